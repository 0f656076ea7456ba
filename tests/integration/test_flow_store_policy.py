"""The flow's shared store and its load balancer made and removed as the least-privilege user (docs/iam-policy.json)
on the sandbox's API front, which evaluates that policy with resource ARNs as IAM does: the policy is enough, and a
rerun changes nothing."""

from __future__ import annotations

import subprocess

from conftest import BIN, HERE
from test_connection import front_env, strict_front, strict_tests  # noqa: F401 # pylint: disable=unused-import

from sandbox import acm


def run_as_least_privilege_user(aws_env, front, tmp_path, playbook: str, flow_name: str, *extra: str) -> None:
    """``playbook`` (tests/integration/playbooks/) as the least-privilege user; the administrator observes."""
    user = front[1][strict_tests.iam.USER]
    admin = front[1][strict_tests.iam.ADMIN_USER]
    env = dict(front_env(aws_env, front, user), FLOW_STORE_OBSERVER=f"{admin[0]}:{admin[1]}")
    cmd = [str(BIN / "ansible-playbook"), str(HERE / "playbooks" / playbook), "-e", f"flow_name={flow_name}", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_store_made_and_removed_with_the_policy_alone(aws_env, strict_front, tmp_path):  # noqa: F811
    run_as_least_privilege_user(aws_env, strict_front, tmp_path, "flow_store.yml", "policy-check")


def test_load_balancer_made_and_removed_with_the_policy_alone(aws_env, strict_front, tmp_path):  # noqa: F811
    """clone.yml's load balancer, target group, security group and certificate (signed by a CA as the sandbox's, and
    imported into ACM), and their teardown (playbooks/flow_lb.yml): every ELB, ACM and EC2 action they call is in
    docs/iam-policy.json."""
    ca = acm.ensure_ca(tmp_path / "ca" / "ca.pem", tmp_path / "ca" / "ca.key")
    run_as_least_privilege_user(
        aws_env, strict_front, tmp_path, "flow_lb.yml", "policy-lb", "-e", f"flow_sandbox_ca={ca}"
    )


def test_load_balancer_teardown_keeps_to_one_flow_teardown_timeout(aws_env, strict_front, tmp_path):  # noqa: F811
    """The target group's retries (ResourceInUse while the deleted load balancer's interface lingers, 20 s) and the wait
    for the interfaces share one deadline: with flow_teardown_timeout 30 and an interface that holds the security
    group for good, the teardown fails within about 30 s naming it, not 20 + 30 (playbooks/flow_lb_deadline.yml)."""
    run_as_least_privilege_user(aws_env, strict_front, tmp_path, "flow_lb_deadline.yml", "lb-deadline")
