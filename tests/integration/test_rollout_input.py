"""playbooks/rollout.yml refuses a bad batch size or health timeout in one line, before any AWS call (the endpoint
here answers nothing: a call would fail differently)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"rollout_batch_size": 0}, "rollout_batch_size: '0' is not a whole number of clones of at least 1"),
        ({"rollout_batch_size": "two"}, "rollout_batch_size: 'two' is not a whole number of clones of at least 1"),
        ({"rollout_health_timeout": -5}, "rollout_health_timeout: '-5' is not a whole number of seconds of at least 1"),
    ],
)
def test_bad_rollout_variable_is_one_line_and_calls_nothing(tmp_path, extra, named):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens: any AWS call would fail with another message
        AWS_ACCESS_KEY_ID="AKIDROLLOUT",
        AWS_SECRET_ACCESS_KEY="rollout",
        AWS_DEFAULT_REGION="us-east-1",
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        HOME=str(tmp_path),
    )
    cmd = [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / "rollout.yml"), "-e", json.dumps(extra)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout[-3000:]
    failed = [line for line in proc.stdout.splitlines() if line.startswith("failed: ") or line.startswith("fatal: ")]
    assert len(failed) == 1, proc.stdout[-3000:]
    assert json.loads(failed[0].split(" => ", 1)[1])["msg"] == named
    assert "Find the image to roll onto" not in proc.stdout  # stopped before the first AWS call
