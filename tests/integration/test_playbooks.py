"""Each integration playbook asserts the behaviour it shows; see playbooks/*.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

# flow_lb needs the sandbox's CA and ACM as the sandbox serves it, and flow_lb_deadline an observer's key to hold
# the load balancer's resources: test_flow_store_policy.py runs both on the sandbox's API front, as the
# least-privilege user.
ELSEWHERE = {"flow_lb", "flow_lb_deadline"}
PLAYBOOKS = sorted(p.stem for p in (Path(__file__).parent / "playbooks").glob("*.yml") if p.stem not in ELSEWHERE)


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook(playbook, name):
    proc = playbook(name)
    assert "failed=0" in proc.stdout
