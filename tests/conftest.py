"""The one ``sandbox`` fixture of every suite that needs the real sandbox (tests/sandbox, tests/awx,
tests/reliability): the running sandbox is used as it is, or one is started here and stopped at the end of the
session (and only then, so a test session never stops a sandbox someone else is using). Needs root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sandbox():
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from sandbox import Sandbox

    box = Sandbox()
    with box.session(say=lambda m: print(m, file=sys.stderr)) as started:
        box.started_by_fixture = started
        yield box
        if box.pid():  # faults a test turned on end with the session (the sandbox may stay running)
            try:
                box.chaos_off()
            except Exception as err:  # a sandbox started from older code has no chaos routes
                print(f"chaos off: {err}", file=sys.stderr)
