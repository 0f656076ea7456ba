"""Fixtures for tests of the sandbox itself: the session's `sandbox` (tests/conftest.py), its EC2 client, and the
day-two flow that test_https.py, test_pipeline.py and test_rollout.py share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sandbox_helpers import DAY_TWO, DAY_TWO_BASE_PARAMETER, day_two_leftovers, flow_runner

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


@pytest.fixture(scope="session")
def day_two(sandbox, tmp_path_factory):
    """One run of the flow (playbooks/flow.yml as the least-privilege user: 2 clones behind the load balancer over
    HTTPS, the flow's default store (DynamoDB + S3, which both clones share: a session signed in on one is known to
    the other), its base image named by an SSM parameter of the account as a team's own is, hosts configured with
    Mitogen), shared by the modules that need a whole flow, in the order pytest runs them (file order): test_https.py
    only reads it, test_pipeline.py bakes, publishes and rolls out new images, test_rollout.py rolls the clones
    further. A flow costs about two minutes with its teardown: one instead of three.

    ``day_two(playbook, timeout=900, **extra)`` runs another playbook of that flow (flow_runner); ``.flow`` is the
    first run's output, ``.key`` the user's access key, ``.bases`` Debian release -> base image ID, ``.workdir``.
    Torn down at the end of the session, or before a test that stops the sandbox (``shared_flows_down``): nothing of
    it is left (load balancer, target group, their security groups, certificate, parameters, builders and canaries)."""
    from sandbox import config

    workdir = tmp_path_factory.mktemp(DAY_TWO)
    admin_ssm = sandbox.client("us-east-1", "ssm")
    debian = sandbox.client("us-east-1").describe_images(
        Owners=[config.DEBIAN_OWNER], Filters=[{"Name": "name", "Values": ["debian-*"]}]
    )
    bases = {image["Name"].split("-")[1]: image["ImageId"] for image in debian["Images"]}
    admin_ssm.put_parameter(
        Name=DAY_TWO_BASE_PARAMETER, Value=bases["12"], Type="String", DataType="aws:ec2:image", Overwrite=True
    )
    base = {
        "flow_name": DAY_TWO,
        "flow_clone_count": 2,
        "flow_key_path": str(workdir / "key"),
        "flow_base_ssm_parameter": DAY_TWO_BASE_PARAMETER,
        "flow_hosts": f"flow_{DAY_TWO}:&role_source",
        # configure.yml (the source's, the pipeline builders') with Mitogen: the flow once with it in make test
        "flow_mitogen": True,
    }
    run = flow_runner(sandbox, workdir, base)
    run.key, run.bases, run.workdir = sandbox.env()["AWS_ACCESS_KEY_ID"], bases, workdir
    closed = []

    def close():
        if closed:
            return
        closed.append(True)
        down = run("teardown.yml")
        admin_ssm.delete_parameter(Name=DAY_TWO_BASE_PARAMETER)
        assert down.returncode == 0, down.stdout[-4000:]
        left = day_two_leftovers(sandbox)
        assert not any(left.values()), left

    _SHARED_FLOWS.append(close)
    try:
        first = run("flow.yml", timeout=1200)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
        run.flow = first.stdout
        yield run
    finally:
        close()


# The close() of each shared flow of the session: a test that stops the sandbox tears them down first.
_SHARED_FLOWS: list = []


@pytest.fixture
def shared_flows_down():
    """Tears down the session's shared flows (day_two) now, and checks they left nothing, before a test stops the
    sandbox (their own teardown, at the end of the session, would find no sandbox)."""
    while _SHARED_FLOWS:
        _SHARED_FLOWS.pop()()
