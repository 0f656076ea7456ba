"""The flow's shared store made and removed as the least-privilege user (docs/iam-policy.json) on the sandbox's API
front, which evaluates that policy with resource ARNs as IAM does: the policy is enough, and a rerun changes nothing."""

from __future__ import annotations

import subprocess

from conftest import BIN, HERE
from test_connection import front_env, strict_front, strict_tests  # noqa: F401 # pylint: disable=unused-import


def test_store_made_and_removed_with_the_policy_alone(aws_env, strict_front, tmp_path):  # noqa: F811
    user = strict_front[1][strict_tests.iam.USER]
    admin = strict_front[1][strict_tests.iam.ADMIN_USER]
    env = dict(front_env(aws_env, strict_front, user), FLOW_STORE_OBSERVER=f"{admin[0]}:{admin[1]}")
    cmd = [str(BIN / "ansible-playbook"), str(HERE / "playbooks" / "flow_store.yml"), "-e", "flow_name=policy-check"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
