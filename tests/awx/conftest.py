"""Fixtures of the AWX run: a job environment free of AWS variables (the sandbox: tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from awxjobs import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session", autouse=True)
def no_aws_in_the_controller_env():
    """As on AWX, credentials reach a job only through its own environment, never the controller's."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    # ansible-playbook and ansible-inventory of the project's virtualenv, as the execution environment has them.
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{path}"
    yield
    os.environ.update(saved, PATH=path)


@pytest.fixture
def awx_root():
    """Where the jobs' private data directories go: short like AWX's, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="awx_"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
