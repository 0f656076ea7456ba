"""EBS encryption by default with a customer-managed KMS key, and what EC2 does when the caller cannot use the key.

moto keeps the account's EBS settings (``EnableEbsEncryptionByDefault``, ``ModifyEbsDefaultKmsKeyId``) but does not
apply them to RunInstances, and never asks whether the caller may use a key. As on AWS:

- with encryption by default on, every volume RunInstances makes is encrypted, whatever the request says, with
  the key the request names or else the account's default EBS key (the root volume too, when not listed);
- a volume encrypted with a customer-managed key needs the caller's ``kms:CreateGrant`` (for an AWS resource),
  ``kms:Decrypt``, ``kms:DescribeKey``, ``kms:GenerateDataKeyWithoutPlaintext`` and ``kms:ReEncrypt*`` on it
  (EC2 uses the key on the caller's behalf). Without them RunInstances still answers 200, and the instance goes
  from ``pending`` to ``terminated`` with state reason ``Client.InternalError`` (it never boots).

At start (``SANDBOX_EBS_DEFAULT_CMK``, default ``1``) the sandbox makes such a key in each region of its images,
alias ``alias/bakery-sandbox-ebs``, makes it the EBS default key and turns encryption by default on: what an
account with an organisation's encryption rules looks like. ``0`` leaves moto's defaults (encryption off).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
import xml.etree.ElementTree as ET

from . import config, iam
from .errors import SandboxError

log = logging.getLogger("sandbox")
NS = "{" + config.EC2_NS.rstrip("/") + "}"
ALIAS = "alias/bakery-sandbox-ebs"
# What EC2 needs of the caller on a customer-managed key (EBS docs, "Permissions for IAM users": the key policy
# of a new key delegates to IAM, so the caller's IAM policies decide).
KEY_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)
REFUSED = ("Client.InternalError", "Client.InternalError: Client error on launch")
TERMINATE_AFTER = 1.0  # seconds an instance EC2 cannot encrypt reads pending before it is terminated
_MAPPING_RE = re.compile(r"BlockDeviceMapping\.(\d+)\.")


def enabled_from_env(environ=os.environ) -> bool:
    value = (environ.get("SANDBOX_EBS_DEFAULT_CMK") or "1").strip()
    if value not in ("0", "1"):
        raise SandboxError(f"SANDBOX_EBS_DEFAULT_CMK: {value!r} is not 0 or 1")
    return value == "1"


def missing_actions(documents: list[dict], key_arn: str, region: str) -> list[str]:
    """The actions of :data:`KEY_ACTIONS` the caller's policies do not allow on ``key_arn`` when EC2 uses it."""
    context = {
        "kms:GrantIsForAWSResource": ["true"],
        "kms:ViaService": [f"ec2.{region}.amazonaws.com"],
        "kms:CallerAccount": [config.ACCOUNT_ID],
    }
    return [a for a in KEY_ACTIONS if iam.evaluate(documents, a, key_arn, context) != iam.ALLOW]


def encrypt_mappings(params: dict, root: dict | None, default_key: str) -> dict:
    """RunInstances' parameters with every EBS volume encrypted (``root``: the image's root mapping, added when the
    request does not list that device), the default key where none is named."""
    out = dict(params)
    numbers = sorted({int(m[1]) for k in params if (m := _MAPPING_RE.match(k))})
    devices = {params.get(f"BlockDeviceMapping.{n}.DeviceName") for n in numbers}
    if root is not None and root["DeviceName"] not in devices:
        n = (numbers[-1] if numbers else 0) + 1
        numbers.append(n)
        out[f"BlockDeviceMapping.{n}.DeviceName"] = root["DeviceName"]
        for key, value in (root.get("Ebs") or {}).items():
            if key in ("SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination"):
                out[f"BlockDeviceMapping.{n}.Ebs.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for n in numbers:
        if f"BlockDeviceMapping.{n}.NoDevice" in out or f"BlockDeviceMapping.{n}.VirtualName" in out:
            continue
        out[f"BlockDeviceMapping.{n}.Ebs.Encrypted"] = "true"
        out.setdefault(f"BlockDeviceMapping.{n}.Ebs.KmsKeyId", default_key)
    return out


def requested_keys(params: dict, default_key: str) -> list[str]:
    """The keys the request's encrypted volumes use (the default key for those that name none), in order."""
    numbers = sorted({int(m[1]) for k in params if (m := _MAPPING_RE.match(k))})
    keys = []
    for n in numbers:
        named = params.get(f"BlockDeviceMapping.{n}.Ebs.KmsKeyId")
        encrypted = params.get(f"BlockDeviceMapping.{n}.Ebs.Encrypted", "false").lower() == "true"
        key = named or (default_key if encrypted else None)
        if key and key not in keys:
            keys.append(key)
    return keys


class EbsKeys:
    """The hook the middleware calls for RunInstances (``before``, ``after``) and instance answers (``rewrite``)."""

    def __init__(self, core):
        self.core = core
        self.doomed: dict[str, str] = {}  # instance ID -> the key EC2 could not use for it
        self.lock = threading.Lock()
        self.default_keys: dict[str, str] = {}  # region -> the EBS default key's ARN (moto does not answer it)

    # ------------------------------------------------------------ the account's EBS default key
    def answer(self, action: str, region: str) -> bytes | None:
        """EC2's answer to GetEbsDefaultKmsKeyId and ResetEbsDefaultKmsKeyId (moto has neither); None otherwise."""
        if action not in ("GetEbsDefaultKmsKeyId", "ResetEbsDefaultKmsKeyId"):
            return None
        if action == "ResetEbsDefaultKmsKeyId":
            self.default_keys.pop(region, None)
        key = self.default_key(region)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{NS[1:-1]}">'
            f"<requestId>{uuid.uuid4()}</requestId><kmsKeyId>{key}</kmsKeyId></{action}Response>"
        ).encode()

    def default_key(self, region: str) -> str:
        """The EBS default key: the one ModifyEbsDefaultKmsKeyId set, else the AWS-managed ``alias/aws/ebs``."""
        return self.default_keys.get(region) or f"arn:aws:kms:{region}:{config.ACCOUNT_ID}:alias/aws/ebs"

    def after_modify(self, region: str, body: bytes) -> None:
        """ModifyEbsDefaultKmsKeyId answered by moto: its answer names the key's ARN."""
        found = ET.fromstring(body).findtext(NS + "kmsKeyId")  # noqa: S314 - moto's own response
        if found:
            self.default_keys[region] = found

    def setup(self, regions) -> None:
        """A customer-managed key per region, the EBS default key there, encryption by default on."""
        for region in regions:
            kms = self.core.client("kms", region)
            key = kms.create_key(Description="bakery sandbox: the account's default EBS key (customer managed)")
            arn = key["KeyMetadata"]["Arn"]
            kms.create_alias(AliasName=ALIAS, TargetKeyId=arn)
            ec2 = self.core.ec2(region)
            self.default_keys[region] = ec2.modify_ebs_default_kms_key_id(KmsKeyId=arn)["KmsKeyId"]
            ec2.enable_ebs_encryption_by_default()
            log.info("EBS encryption by default in %s with customer-managed key %s (%s)", region, arn, ALIAS)

    # ------------------------------------------------------------ RunInstances
    def before_run(self, params: dict, region: str, caller) -> dict | None:
        """Encrypt what the account's default says; note a key the caller cannot use (``_kms_refused``)."""
        ec2 = self.core.ec2(region)
        changed = None
        default_key = None
        if ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]:
            default_key = self.default_key(region)
            changed = encrypt_mappings(params, self._root_mapping(ec2, params.get("ImageId", "")), default_key)
        wanted = changed or params
        if caller is None:  # IAM not enforced (the API front of the sandbox's own tests): nothing to refuse
            return changed
        if default_key is None and any(k.endswith(".Ebs.Encrypted") for k in wanted):
            default_key = self.default_key(region)
        for ref in requested_keys(wanted, default_key or ""):
            arn = self._customer_key(ref, region)
            if arn and missing_actions(caller[1], arn, region):
                log.info("KMS: %s may not use %s for EBS: its instances will terminate", caller[0], arn)
                return dict(wanted, _kms_refused=arn)
        return changed

    def after_run(self, params: dict, region: str, body: bytes) -> None:
        """Instances EC2 cannot encrypt: pending now, terminated a moment later (Client.InternalError)."""
        key = params.get("_kms_refused")
        if not key:
            return
        ids = [el.text for el in ET.fromstring(body).iter(NS + "instanceId") if el.text]  # noqa: S314 - moto's
        with self.lock:
            self.doomed.update(dict.fromkeys(ids, key))

        def terminate():
            self.core.ec2(region).terminate_instances(InstanceIds=ids)

        timer = threading.Timer(TERMINATE_AFTER, terminate)
        timer.daemon = True
        timer.start()

    def is_doomed(self, instance_id: str) -> bool:
        return instance_id in self.doomed

    def rewrite(self, body: bytes, set_reason) -> bytes:
        """An instance EC2 cannot encrypt never runs: ``pending`` until it is terminated, then the state reason
        ``Client.InternalError`` (moto would show it ``running`` in between)."""
        if not self.doomed or not any(iid.encode() in body for iid in list(self.doomed)):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        changed = False
        for item in root.iter(NS + "item"):
            if item.findtext(NS + "instanceId") not in self.doomed:
                continue
            for tag in ("instanceState", "currentState"):
                state = item.find(NS + tag)
                if state is not None and state.findtext(NS + "name") == "running":
                    state.find(NS + "code").text, state.find(NS + "name").text = "0", "pending"
                    changed = True
            if item.findtext(f"{NS}instanceState/{NS}name") in ("shutting-down", "terminated"):
                set_reason(item, *REFUSED)
                changed = True
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root) if changed else body

    # ------------------------------------------------------------ keys
    def _customer_key(self, ref: str, region: str) -> str | None:
        """The ARN of the customer-managed key ``ref`` names (ID, ARN, alias); None for an AWS-managed key."""
        kms = self.core.client("kms", region)
        try:
            meta = kms.describe_key(KeyId=ref)["KeyMetadata"]
        except Exception:  # an unknown key: EC2 refuses it elsewhere; nothing to decide here
            return None
        aliases = kms.list_aliases(KeyId=meta["KeyId"]).get("Aliases", [])
        if meta.get("KeyManager") == "AWS" or any(a["AliasName"].startswith("alias/aws/") for a in aliases):
            return None
        return meta["Arn"]

    @staticmethod
    def _root_mapping(ec2, image_id: str) -> dict | None:
        try:
            image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        except Exception:  # an unknown image: RunInstances answers that itself
            return None
        root = image.get("RootDeviceName") or "/dev/sda1"
        found = next((m for m in image.get("BlockDeviceMappings", []) if m.get("DeviceName") == root and "Ebs" in m),
                     None)  # fmt: skip
        # moto's own root volume when none is listed: 8 GiB, deleted with the instance (as EC2's default)
        ebs = {"VolumeSize": 8, **((found or {}).get("Ebs") or {}), "DeleteOnTermination": True}
        return {"DeviceName": root, "Ebs": ebs}
