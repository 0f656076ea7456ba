"""Fixtures for the reliability tests.

- ``api``: the sandbox's API front (moto + the sandbox middleware, with fault injection) without
  hosts, on 127.0.0.1, one per session, reset per test. No root needed; most tests use it.
- ``sandbox``: the real sandbox (root), tests/conftest.py's.
- ``run_module``: run a module of the collection directly (as Ansible does, arguments in a file)
  and return its JSON result plus its raw output.
- ``run_ansible``: run ``ansible-playbook`` or ``ansible-inventory`` in the test's directory.

The API front is eventually consistent as EC2 is (sandbox/strict.py: a seeded 0-2 s per created
resource): what a test creates itself is waited for with ``visible``/``until_listed`` before it is
observed or snapshotted, as a careful EC2 client would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent
COLLECTIONS = REPO / ".build" / "collections"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_spec = importlib.util.spec_from_file_location("bakery_integration_conftest", REPO / "tests/integration/conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)
_spec = importlib.util.spec_from_file_location("bakery_sandbox_helpers", REPO / "tests/sandbox/sandbox_helpers.py")
sandbox_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sandbox_helpers)
eventually = sandbox_helpers.eventually

# Requests signed with this key are the only ones random faults hit (the sandbox may be shared).
ACCESS_KEY = "AKIDRELIABILITYTESTS"
SECRET_KEY = "reliability-secret-key-must-never-be-shown"
REGION = "us-east-1"


def base_env(endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        PYTHONPATH=str(COLLECTIONS),
        PYTHONUNBUFFERED="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
    )
    return env


def client(endpoint: str, region: str = REGION):
    import boto3

    return boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="AKIDOBSERVER",  # not ACCESS_KEY: observing is never faulted
        aws_secret_access_key="observer",
    )


def visible(ec2, instances=(), images=()) -> None:
    """Return once what the test itself just created can be named by ID (``*.NotFound`` meanwhile)."""
    if instances:
        eventually(ec2.describe_instances, InstanceIds=list(instances))
    if images:
        eventually(ec2.describe_images, ImageIds=list(images))


def until_listed(call, timeout: float = 10):
    """``call()``, again until it lists something: a listing leaves out what was created a moment ago."""
    deadline = time.monotonic() + timeout
    while True:
        found = call()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def consistency_window() -> float:
    """The API front's consistency window in seconds (the sandbox's default unless SANDBOX_EC_WINDOW)."""
    from sandbox import strict

    return strict.settings_from_env(os.environ)[0]


def post(url: str, data: dict | None = None, method: str = "POST") -> dict:
    body = json.dumps(data).encode() if data is not None else b""
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
    return json.loads(text) if text.strip().startswith((b"{", b"[")) else {}


# ------------------------------------------------------------------------- the API front without hosts
@pytest.fixture(scope="session")
def api_endpoint(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api")
    amis = workdir / "amis.json"
    integration.catalogue().write(amis)
    port = integration.free_port()
    env = dict(os.environ, MOTO_AMIS_PATH=str(amis), MOTO_ALLOW_NONEXISTENT_REGION="true")
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(HERE / "apiserver.py"), str(port)]
    with integration.local_server(cmd, env, workdir / "api.log", f"{url}/_sandbox/status", "API server"):
        yield url


@pytest.fixture
def api(api_endpoint):
    """The API front, reset (catalogue only, no faults, no client tokens) for this test."""
    post(f"{api_endpoint}/moto-api/reset")
    return api_endpoint


@pytest.fixture
def ec2(api):
    return client(api)


@pytest.fixture
def env(api):
    return base_env(api)


# ------------------------------------------------------------------------- running modules
class ModuleRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.stdout, self.stderr, self.rc = proc.stdout, proc.stderr, proc.returncode
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        self.result = json.loads(lines[-1]) if lines else {}
        self.failed = bool(self.result.get("failed")) or self.rc != 0
        self.msg = str(self.result.get("msg", ""))


def run_captured(cmd, env, cwd, timeout) -> subprocess.CompletedProcess:
    """Run ``cmd`` with its output captured as text; the return code is the test's to check."""
    return subprocess.run(
        [str(part) for part in cmd], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


@pytest.fixture
def run_module(tmp_path):
    """Run ``bakery.ec2.<name>`` with ``args`` as Ansible does (arguments file), return a ModuleRun."""
    count = 0

    def run(name, args, env, check_mode=False, timeout=180):
        nonlocal count
        count += 1
        argfile = tmp_path / f"args-{count}.json"
        argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode)}))
        module = f"ansible_collections.bakery.ec2.plugins.modules.{name}"
        return ModuleRun(run_captured([sys.executable, "-m", module, argfile], env, tmp_path, timeout))

    return run


@pytest.fixture
def run_ansible(tmp_path):
    """Run ``ansible-playbook`` or ``ansible-inventory`` of the virtualenv in ``tmp_path``; its output is kept.

    ``run("ansible-playbook", "-vvv", "-i", "localhost,", play, env=env)`` -> subprocess.CompletedProcess
    (not checked: the test asserts on the return code and the output).
    """

    def run(tool, *args, env, timeout=120):
        return run_captured([BIN / tool, *args], env, tmp_path, timeout)

    return run


def resources(ec2) -> dict:
    """What exists in us-east-1 that a module could have created, as sorted ID lists."""
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    return {
        "instances": sorted(instances),
        "images": sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]),
        "snapshots": sorted(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
        "key_pairs": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "volumes": sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]),
        "tags": sorted((t["ResourceId"], t["Key"], t["Value"]) for t in ec2.describe_tags()["Tags"]),
    }
