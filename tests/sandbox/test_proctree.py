"""tests/proctree.py, which the crash tests rely on to kill a controller: no root, no sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from proctree import _alive, _children, kill_tree

# A controller whose worker leaves the process group (setsid, as ansible-core's workers do) and starts a module.
CONTROLLER = """
import os, subprocess, sys, time
if os.fork() == 0:
    os.setsid()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(120)
time.sleep(120)
"""


def test_the_whole_tree_dies_also_what_left_the_process_group():
    controller = subprocess.Popen([sys.executable, "-c", CONTROLLER], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (workers := _children({controller.pid})) or not (modules := _children(workers)):
            assert time.monotonic() < deadline, "the stand-in controller did not start its worker and module"
            time.sleep(0.05)
        (worker,), (module,) = workers, modules
        assert os.getpgid(worker) != controller.pid  # what os.killpg(controller.pid, ...) would leave running
        tree = kill_tree(controller.pid)
        assert tree == {controller.pid, worker, module}
        assert controller.wait(timeout=10) == -signal.SIGKILL
        assert not _alive(worker) and not _alive(module)
    finally:
        if controller.poll() is None:
            kill_tree(controller.pid)
            controller.wait(timeout=10)
