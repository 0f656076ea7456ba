"""Unit-test harness: run a module's main() against a botocore Stubber.

The Stubber validates every request against the real EC2 API model, so a test that
passes here sent requests EC2 would accept. No network is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible.plugins.loader import init_plugin_loader

# Ansible's collection loader must import the collection (before anything else does), so that plugins
# can also be loaded by name, as ansible-inventory loads them (tests/unit/plugins/inventory).
init_plugin_loader([str(Path(__file__).resolve().parents[2] / ".build" / "collections")])

from ansible_collections.bakery.ec2.plugins.module_utils import _client, _module
from botocore.stub import Stubber


class ModuleExit(BaseException):  # like SystemExit, which exit_json raises
    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result = result
        self.failed = failed


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    """Retries and waits do not really sleep; the delays asked for are recorded."""
    slept = []
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(slept.append))
    return slept


@pytest.fixture
def slept(_no_sleep):
    return _no_sleep


@pytest.fixture
def stubbed_clients(monkeypatch):
    """Stubbed clients keyed by (service, region) that every module in the test will use."""
    clients = {}

    def make(region="us-east-1", service="ec2"):
        if (service, region) not in clients:
            client = boto3.client(
                service, region_name=region, aws_access_key_id="AKIATEST", aws_secret_access_key="secret"
            )
            stubber = Stubber(client)
            stubber.activate()
            clients[(service, region)] = (_client.AwsClient(client), stubber)
        return clients[(service, region)]

    def fake_build_client(params, service="ec2", region=None, max_attempts=10, session=None):
        return make(region or params.get("region") or "us-east-1", service)[0]

    monkeypatch.setattr(_module, "build_client", fake_build_client)
    yield make
    for _built, stubber in clients.values():
        stubber.assert_no_pending_responses()


@pytest.fixture
def ec2(stubbed_clients):
    """A stubbed EC2 client for us-east-1; ``for_region(name)`` gives another region's."""
    stub = stubbed_clients()[1]
    stub.for_region = lambda region: stubbed_clients(region)[1]
    return stub


@pytest.fixture
def ec2_client(stubbed_clients):
    """``(client, stubber)``: an AwsClient for us-east-1 and its Stubber, for module_utils called directly."""
    return stubbed_clients()


@pytest.fixture
def ssm(stubbed_clients):
    """A stubbed SSM client for us-east-1; ``for_region(name)`` gives another region's."""
    stub = stubbed_clients(service="ssm")[1]
    stub.for_region = lambda region: stubbed_clients(region, "ssm")[1]
    return stub


@pytest.fixture
def run_module(monkeypatch):
    """Run ``module.main()`` with ``args``; return ``ModuleExit`` with the result and whether it failed."""

    def exit_json(self, **result):
        raise ModuleExit(result, False)

    def fail_json(self, msg, **result):
        result["msg"] = msg
        raise ModuleExit(result, True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(module, args, check_mode=False, diff=False, aws=True):
        args = dict(args)
        if aws:
            args.setdefault("region", "us-east-1")
            args.setdefault("access_key", "AKIATEST")
            args.setdefault("secret_key", "secret")
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args), pytest.raises(ModuleExit) as caught:
            module.main()
        # Results must be JSON like a real module's.
        json.dumps(caught.value.result)
        return caught.value

    return run
