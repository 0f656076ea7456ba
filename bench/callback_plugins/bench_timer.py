# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark callback: one JSON line per task result, with the task's start and end (epoch seconds)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timer
type: aggregate
short_description: Write each task's start, end and result flags to $BENCH_TIMER_FILE (benchmarks only)
description:
  - Used by bench/; not part of the collection.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=bench_timer
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("BENCH_TIMER_FILE")
        self.started = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = time.time()

    def _record(self, result, status):
        if not self.path:
            return
        end = time.time()
        task = result._task
        data = result._result
        record = {
            "task": task.get_name(),
            "host": result._host.get_name(),
            "start": self.started.get(task._uuid, end),
            "end": end,
            "status": status,
            "changed": bool(data.get("changed")),
            "msg": str(data.get("msg", ""))[:500] if status == "failed" else "",
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
