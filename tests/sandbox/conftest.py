"""Fixtures for tests that need the sandbox: `sandbox` (session) starts it unless already running."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    """A running sandbox. Started (and stopped at the end) unless one is already running."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    box = Sandbox()
    with box.session(say=lambda m: print(m, file=sys.stderr)) as started:
        box.started_by_fixture = started
        for k, v in box.env().items():
            os.environ.setdefault(k, v)
        yield box


@pytest.fixture(scope="session")
def ec2(sandbox):
    return sandbox.client("us-east-1")


def pytest_collection_modifyitems(items):
    """test_down_leaves_nothing stops the sandbox: it runs after every other test (the sort is stable)."""
    items.sort(key=lambda item: item.originalname == "test_down_leaves_nothing")
