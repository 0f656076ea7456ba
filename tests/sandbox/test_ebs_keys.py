"""The EBS default key's rules without a sandbox: encryption forced on every volume, the keys a launch uses, what
the caller's policies must allow on a customer-managed key (sandbox/kms.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox import kms

ROOT = Path(__file__).resolve().parents[2]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_every_volume_is_encrypted_with_the_default_key_unless_one_is_named():
    params = {
        "BlockDeviceMapping.1.DeviceName": "/dev/sdf",
        "BlockDeviceMapping.1.Ebs.Encrypted": "false",
        "BlockDeviceMapping.2.DeviceName": "/dev/sdg",
        "BlockDeviceMapping.2.Ebs.KmsKeyId": "alias/mine",
    }
    root = {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}}
    out = kms.encrypt_mappings(params, root, KEY)
    assert out["BlockDeviceMapping.1.Ebs.Encrypted"] == "true" and out["BlockDeviceMapping.1.Ebs.KmsKeyId"] == KEY
    assert out["BlockDeviceMapping.2.Ebs.KmsKeyId"] == "alias/mine"
    assert out["BlockDeviceMapping.3.DeviceName"] == "/dev/xvda"
    assert out["BlockDeviceMapping.3.Ebs.DeleteOnTermination"] == "true"
    assert kms.requested_keys(out, KEY) == [KEY, "alias/mine"]
    assert kms.requested_keys({"BlockDeviceMapping.1.Ebs.Encrypted": "false"}, KEY) == []


def test_the_shipped_policy_lets_ec2_use_a_customer_managed_key_and_nothing_less_does():
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    assert kms.missing_actions([policy], KEY, "us-east-1") == []
    without = dict(policy, Statement=[s for s in policy["Statement"] if not any(
        str(a).startswith("kms:") for a in s.get("Action", []))])  # fmt: skip
    assert kms.missing_actions([without], KEY, "us-east-1") == list(kms.KEY_ACTIONS)


@pytest.mark.parametrize("value", ["yes", "2"])
def test_a_bad_setting_is_one_line(value):
    with pytest.raises(kms.SandboxError, match=f"SANDBOX_EBS_DEFAULT_CMK: '{value}' is not 0 or 1"):
        kms.enabled_from_env({"SANDBOX_EBS_DEFAULT_CMK": value})


def test_the_default_key_is_answered_as_ec2_does():
    """GetEbsDefaultKmsKeyId (moto has none): the key ModifyEbsDefaultKmsKeyId set, else alias/aws/ebs; a reset
    forgets it."""
    keys = kms.EbsKeys(core=None)
    assert b"<kmsKeyId>arn:aws:kms:us-east-1:123456789012:alias/aws/ebs</kmsKeyId>" in keys.answer(
        "GetEbsDefaultKmsKeyId", "us-east-1"
    )
    keys.after_modify("us-east-1", f'<M xmlns="{kms.NS[1:-1]}"><kmsKeyId>{KEY}</kmsKeyId></M>'.encode())
    assert f"<kmsKeyId>{KEY}</kmsKeyId>".encode() in keys.answer("GetEbsDefaultKmsKeyId", "us-east-1")
    assert b"alias/aws/ebs" in keys.answer("ResetEbsDefaultKmsKeyId", "us-east-1")
    assert keys.default_key("us-east-1").endswith(":alias/aws/ebs")
    assert keys.answer("DescribeVolumes", "us-east-1") is None


def test_an_instance_ec2_cannot_encrypt_reads_pending_until_terminated_never_running():
    """moto shows a new instance running at once; the one EC2 cannot encrypt never runs (a waiter for running must
    see it die, not pass in the second before its termination)."""
    from sandbox import config
    from sandbox.services.ec2 import _set_state_reason

    keys = kms.EbsKeys(core=None)
    keys.doomed["i-0000000000000000d"] = "arn:aws:kms:us-east-1:123456789012:key/k"

    def answer(iid: str, state: str, code: int) -> bytes:
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="{config.EC2_NS.rstrip("/")}">'
            "<reservationSet><item><instancesSet><item>"
            f"<instanceId>{iid}</instanceId><instanceState><code>{code}</code><name>{state}</name></instanceState>"
            "<reason></reason></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
        ).encode()

    running = keys.rewrite(answer("i-0000000000000000d", "running", 16), _set_state_reason)
    assert b"<name>pending</name>" in running and b"<code>0</code>" in running and b"running" not in running
    terminated = keys.rewrite(answer("i-0000000000000000d", "terminated", 48), _set_state_reason)
    assert b"<name>terminated</name>" in terminated and b"Client.InternalError" in terminated
    other = answer("i-0000000000000000e", "running", 16)
    assert keys.rewrite(other, _set_state_reason) == other  # only the doomed one
