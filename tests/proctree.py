"""Killing a controller as a crash does: ansible-playbook and every process it started, modules included.

``os.killpg`` on the controller's process group is not enough: ansible-playbook's workers call ``setsid()``
(``ansible.executor.process.worker.WorkerProcess._detach``), so a worker and the module it runs are in sessions of
their own and would go on working, a second controller racing with the rerun that follows. Here the whole tree, found
through ``/proc``, is stopped first (a stopped process cannot fork a child that would escape), then killed, and the
call returns once every process of it is gone. Only the given process and its descendants are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def _stat(pid) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent pid, ...); None once it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its last ')'.
    return stat.rpartition(")")[2].split()


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields:
            found[int(entry.name)] = int(fields[1])
    return found


def _children(parents: set[int]) -> set[int]:
    """The processes whose parent is one of ``parents``."""
    return {child for child, parent in _parents().items() if parent in parents}


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended; only its parent's wait is missing


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # ended meanwhile
        os.kill(pid, sig)


def kill_tree(pid: int, timeout: float = 30.0) -> set[int]:
    """SIGKILL ``pid`` and all its descendants; return their PIDs once none of them runs any more (AssertionError
    after ``timeout`` seconds otherwise)."""
    tree: set[int] = set()
    found = {pid}
    while found:  # stop what was found, then look again under every stopped process, until nothing new shows up
        for each in found:
            _signal(each, signal.SIGSTOP)
        tree |= found
        found = _children(tree) - tree
    for each in tree:
        _signal(each, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        running = sorted(each for each in tree if each != pid and _alive(each))  # pid: its caller waits for it
        if not running:
            return tree
        assert time.monotonic() < deadline, f"still running {timeout} s after SIGKILL: {running}"
        time.sleep(0.05)
