"""Fixtures for tests of the sandbox itself: the session's `sandbox` (tests/conftest.py) and its EC2 client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def sandbox(sandbox):
    """tests/conftest.py's sandbox, its least-privilege environment the default of this session's clients."""
    for k, v in sandbox.env().items():
        os.environ.setdefault(k, v)
    return sandbox


@pytest.fixture(scope="session")
def ec2(sandbox):
    return sandbox.client("us-east-1")


def pytest_collection_modifyitems(items):
    """test_down_leaves_nothing stops the sandbox: it runs after every other test (the sort is stable)."""
    items.sort(key=lambda item: item.originalname == "test_down_leaves_nothing")
