# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the instances of ec2_launch's group (those named ``name``). Not a public API.

What they are (:class:`LaunchSpec`), what they are launched from (image and instance type checks), the
RunInstances request with its deterministic client token, what differs and cannot change in place (drift), and
:class:`Fleet`, which terminates the surplus, launches the missing, reconciles the rest in place and waits for
their states.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._client import CONSISTENCY_TIMEOUT
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError, not_found
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks
from ansible_collections.bakery.ec2.plugins.module_utils._tags import (
    compare_tags,
    dict_to_tags,
    tag_specifications,
    tags_to_dict,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

# Instances in these states count as the group's.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
INSTANCE_NOT_FOUND = ("InvalidInstanceID.NotFound",)
# RunInstances errors after which another zone that offers the type may do.
ZONE_CAPACITY_CODES = ("Unsupported", "InsufficientInstanceCapacity")
# State reasons of an instance EC2 terminated at launch because it could not use the KMS key of its volumes (the
# caller lacks the key's grants, or the key is disabled or pending deletion): RunInstances itself answered 200.
KMS_STATE_CODES = ("Client.InternalError", "Client.InvalidKMSKey.InvalidState")
KMS_NEEDS = (
    "kms:CreateGrant (for AWS resources), kms:Decrypt, kms:DescribeKey, kms:GenerateDataKeyWithoutPlainText and "
    "kms:ReEncrypt* on it (docs/iam-policy.json), and the key must be enabled"
)


# --- what the group's instances are -----------------------------------------------------------------


@dataclass(frozen=True)
class LaunchSpec:
    """What the group's instances are made of: what each launch asks for and what drift is measured against.

    Made from ec2_launch's options once the image is known (``image_id``: ``resolve:ssm:NAME`` read already);
    options that decide nothing about an instance (``firewall``, ``target_groups``, ...) are not part of it.
    """

    name: str = ""
    count: int = 1
    state: str = "running"
    image_id: str | None = None
    instance_type: str = "t3.micro"
    subnet_id: str | None = None
    subnet_ids: list[str] | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    user_data: str | None = None
    iam_instance_profile: str | None = None
    volumes: list[dict[str, Any]] | None = None
    metadata_options: dict[str, Any] | None = None
    termination_protection: bool | None = None
    tags: dict[str, Any] | None = None
    purge_tags: bool = True
    wait: bool = True
    wait_timeout: int = 600

    @classmethod
    def of(cls, params: Mapping[str, Any], image_id: str | None = None) -> LaunchSpec:
        """The spec of the module's ``params``, with ``image_id`` (the image resolved) when given."""
        spec = {f.name: params[f.name] for f in fields(cls) if f.name in params}
        if image_id is not None:
            spec["image_id"] = image_id
        return cls(**spec)


# --- pure helpers: order, requests, drift -----------------------------------------------------------


def launch_time_key(instance: dict[str, Any]) -> tuple[str, str]:
    launched = instance.get("LaunchTime")
    return (launched.isoformat() if hasattr(launched, "isoformat") else str(launched or ""), instance["InstanceId"])


def oldest_first(instances: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(instances, key=launch_time_key)


# How many client tokens one launch tries: each group's launch that ended in terminated instances leaves a used
# token behind (EC2 remembers them at least 24 hours after termination), and a pipeline rebakes with the same
# builder group several times a day.
TOKEN_HOPS = 64


def client_token(
    name: str, region: str, vpc_id: str | None, current_ids: Iterable[str], count: int, salt: str = ""
) -> str:
    """A deterministic RunInstances ClientToken (64 characters, EC2's limit).

    It changes with what the launch is for (group, place, instances already there, count wanted), so the same
    interrupted task rerun gets the same token and EC2 returns the same instances instead of launching more.
    """
    text = "|".join([name, region, vpc_id or "", ",".join(sorted(current_ids)), str(count), salt])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def launch_tags(spec: LaunchSpec) -> dict[str, str]:
    tags = {str(k): "" if v is None else str(v) for k, v in (spec.tags or {}).items()}
    tags["Name"] = spec.name
    return tags


def block_device_mappings(
    volumes: Iterable[dict[str, Any]] | None, image: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The BlockDeviceMappings of ``volumes``; a volume that overrides one of the image's without a
    size gets the image's size (EC2 needs a size or a snapshot in every EBS mapping)."""
    image_sizes = {
        m["DeviceName"]: m["Ebs"]["VolumeSize"]
        for m in (image or {}).get("BlockDeviceMappings") or ()
        if m.get("Ebs", {}).get("VolumeSize")
    }
    mappings = []
    for vol in volumes or ():
        ebs = {
            "VolumeType": vol["type"],
            "Encrypted": vol["encrypted"],
            "DeleteOnTermination": vol["delete_on_termination"],
        }
        for option, key in (
            ("size", "VolumeSize"),
            ("iops", "Iops"),
            ("throughput", "Throughput"),
            ("kms_key_id", "KmsKeyId"),
        ):
            if vol[option] is not None:
                ebs[key] = vol[option]
        if "VolumeSize" not in ebs and vol["device_name"] in image_sizes:
            ebs["VolumeSize"] = image_sizes[vol["device_name"]]
        mappings.append({"DeviceName": vol["device_name"], "Ebs": ebs})
    return mappings


def metadata_request(options: dict[str, Any] | None) -> dict[str, Any]:
    """The MetadataOptions of ``metadata_options`` (None when not given): IMDSv2 required unless set otherwise."""
    options = options or {}
    request = {"HttpTokens": options.get("http_tokens") or "required"}
    if options.get("http_put_response_hop_limit") is not None:
        request["HttpPutResponseHopLimit"] = options["http_put_response_hop_limit"]
    if options.get("instance_metadata_tags") is not None:
        request["InstanceMetadataTags"] = options["instance_metadata_tags"]
    return request


def metadata_changes(current: dict[str, Any] | None, options: dict[str, Any] | None) -> dict[str, Any]:
    """The suboptions given in ``options`` that differ from the instance's ``MetadataOptions``.

    Existing instances are only reconciled when ``metadata_options`` is given, and then only in the
    suboptions it sets: adopting a fleet must not silently switch IMDSv1 off.
    """
    wanted = {
        key: (options or {}).get(option)
        for option, key in (
            ("http_tokens", "HttpTokens"),
            ("http_put_response_hop_limit", "HttpPutResponseHopLimit"),
            ("instance_metadata_tags", "InstanceMetadataTags"),
        )
    }
    return {key: value for key, value in wanted.items() if value is not None and (current or {}).get(key) != value}


def build_run_request(
    spec: LaunchSpec,
    subnet_id: str,
    group_ids: list[str] | None,
    count: int,
    token: str,
    image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    request = {
        "ImageId": spec.image_id,
        "InstanceType": spec.instance_type,
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": token,
        "SubnetId": subnet_id,
        "MetadataOptions": metadata_request(spec.metadata_options),
        "TagSpecifications": tag_specifications(launch_tags(spec), "instance", "volume"),
    }
    if group_ids:
        request["SecurityGroupIds"] = list(group_ids)
    if spec.key_name:
        request["KeyName"] = spec.key_name
    if spec.user_data is not None:
        request["UserData"] = spec.user_data
    if spec.iam_instance_profile:
        profile = spec.iam_instance_profile
        request["IamInstanceProfile"] = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
    if spec.volumes:
        request["BlockDeviceMappings"] = block_device_mappings(spec.volumes, image)
    if spec.termination_protection:
        request["DisableApiTermination"] = True
    return request


def image_type_mismatch(image: dict[str, Any] | None, type_info: dict[str, Any]) -> str | None:
    """Why ``image`` cannot boot on the type (a DescribeInstanceTypes entry): ENA or boot mode; None if it can."""
    if not image:
        return None
    itype, iid = type_info.get("InstanceType"), image.get("ImageId")
    if (type_info.get("NetworkInfo") or {}).get("EnaSupport") == "required" and image.get("EnaSupport") is False:
        return f"instance_type: {itype!r} needs ENA networking but image {iid} does not have ENA support enabled"
    boot_modes = type_info.get("SupportedBootModes") or []
    image_mode = image.get("BootMode")
    if boot_modes and image_mode in ("legacy-bios", "uefi") and image_mode not in boot_modes:
        return f"instance_type: {itype!r} boots {'/'.join(boot_modes)} but image {iid} boots {image_mode} only"
    return None


def named_kms_keys(volumes: Iterable[dict[str, Any]] | None) -> list[str]:
    """The KMS keys ``volumes`` (the option) name, in order, once each."""
    return list(dict.fromkeys(vol["kms_key_id"] for vol in volumes or () if vol["kms_key_id"]))


def describe_kms_keys(client: AwsClient, named: Iterable[str], default: bool = True) -> str:
    """The keys volumes were to be encrypted with, for a message: those ``named``, and (``default``) the account's
    default EBS key of the client's region (read now; "the account's default EBS key" when it cannot be read)."""
    keys = list(named)
    if default:
        try:
            found = client.call("get_ebs_default_kms_key_id").get("KmsKeyId")
        except AwsError:
            found = None
        keys.append(f"{found} (the account's default EBS key)" if found else "the account's default EBS key")
    return ", ".join(keys)


def encryption_forced(client: AwsClient, volumes: Iterable[dict[str, Any]] | None) -> bool | None:
    """Whether the account encrypts every new EBS volume (EBS encryption by default); read once, and only when a
    volume asks for ``encrypted: false`` (None otherwise)."""
    if not any(vol["encrypted"] is False for vol in volumes or ()):
        return None
    return bool(client.call("get_ebs_encryption_by_default").get("EbsEncryptionByDefault"))


def instance_drift(
    instance: dict[str, Any], spec: LaunchSpec, volumes: dict[str, dict[str, Any]], encryption_forced: bool = False
) -> list[dict[str, Any]]:
    """What differs from the options and cannot change in place, as ``drift`` entries. ``encryption_forced``: the
    account encrypts every new volume, so an encrypted volume asked for with ``encrypted: false`` is as wanted."""
    wanted = {
        "image_id": (instance.get("ImageId"), spec.image_id),
        "instance_type": (instance.get("InstanceType"), spec.instance_type),
        "subnet_id": (instance.get("SubnetId"), spec.subnet_id),
        "availability_zone": ((instance.get("Placement") or {}).get("AvailabilityZone"), spec.availability_zone),
        "key_name": (instance.get("KeyName"), spec.key_name),
    }
    drift = []
    for option, (current, want) in wanted.items():
        if want is not None and current != want:
            drift.append({"instance_id": instance["InstanceId"], "option": option, "current": current, "wanted": want})
    listed = spec.subnet_ids
    if listed and instance.get("SubnetId") not in listed:
        drift.append(
            {
                "instance_id": instance["InstanceId"],
                "option": "subnet_ids",
                "current": instance.get("SubnetId"),
                "wanted": list(listed),
            }
        )
    attached = {m["DeviceName"]: m.get("Ebs", {}).get("VolumeId") for m in instance.get("BlockDeviceMappings") or ()}
    for vol in spec.volumes or ():
        where = f"volumes[{vol['device_name']}]"
        if vol["device_name"] not in attached:
            drift.append(
                {"instance_id": instance["InstanceId"], "option": where, "current": None, "wanted": "attached"}
            )
            continue
        actual = volumes.get(attached[vol["device_name"]])
        if not actual:
            continue
        for option, key in (
            ("size", "Size"),
            ("type", "VolumeType"),
            ("iops", "Iops"),
            ("throughput", "Throughput"),
            ("encrypted", "Encrypted"),
        ):
            forced = option == "encrypted" and encryption_forced and vol[option] is False and actual.get(key)
            if vol[option] is not None and actual.get(key) != vol[option] and not forced:
                drift.append(
                    {
                        "instance_id": instance["InstanceId"],
                        "option": f"{where}.{option}",
                        "current": actual.get(key),
                        "wanted": vol[option],
                    }
                )
    return drift


def describe_states(instances: Iterable[dict[str, Any]], ids: Iterable[str]) -> str:
    seen = {inst["InstanceId"]: inst["State"]["Name"] for inst in instances}
    return ", ".join(f"{iid} {seen.get(iid, 'not visible yet')}" for iid in ids)


# --- reading EC2 ------------------------------------------------------------------------------------


def find_instances(client: AwsClient, name: str, vpc_id: str | None = None) -> list[dict[str, Any]]:
    """The live instances named ``name`` (in ``vpc_id`` when given), oldest first."""
    filters = [{"Name": "tag:Name", "Values": [name]}, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    reservations = client.paginate("describe_instances", "Reservations", Filters=filters)
    return oldest_first(inst for res in reservations for inst in res.get("Instances", []))


def describe_ids(client: AwsClient, ids: Iterable[str]) -> list[dict[str, Any]]:
    """The instances with these IDs that EC2 shows (new ones may not be visible yet)."""
    found: list[dict[str, Any]] = []
    for part in chunks(ids):
        reservations = client.paginate(
            "describe_instances", "Reservations", Filters=[{"Name": "instance-id", "Values": part}]
        )
        found.extend(inst for res in reservations for inst in res.get("Instances", []))
    return oldest_first(found)


def instance_ids_with(client: AwsClient, filter_name: str, value: str) -> set[str]:
    """IDs of the instances not yet terminated whose ``filter_name`` (``key-name``, ``instance.group-id``) is
    ``value``: what still uses a key pair or a security group."""
    filters = [
        {"Name": filter_name, "Values": [value]},
        {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]},
    ]
    reservations = client.paginate("describe_instances", "Reservations", Filters=filters)
    return {inst["InstanceId"] for res in reservations for inst in res.get("Instances", ())}


def check_image(client: AwsClient, image_id: str, parameter: str | None = None) -> dict[str, Any]:
    """The image ``image_id`` (read from SSM ``parameter`` when given); TaskError when it is not usable here."""
    images = not_found(
        lambda: client.call("describe_images", ImageIds=[image_id])["Images"],
        ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"),
    )
    if not images:
        raise TaskError(
            f"image_id: {image_id!r} not found in {client.region}"
            + (f" (named by SSM parameter {parameter!r})" if parameter else "")
            + "; AMI IDs are per region, so an ID from another region does not exist here: find this region's "
            "with bakery.ec2.ami_find, or copy the image here"
        )
    image = images[0]
    if image.get("State", "available") != "available":
        raise TaskError(f"image_id: {image_id!r} is {image['State']}, not available")
    return image


def check_instance_type(client: AwsClient, instance_type: str, image: dict[str, Any] | None) -> None:
    """TaskError unless the region offers ``instance_type`` and it can boot ``image`` (architecture, ENA, boot)."""
    types = not_found(
        lambda: client.call("describe_instance_types", InstanceTypes=[instance_type])["InstanceTypes"],
        ("InvalidInstanceType",),
    )
    if not types:
        raise TaskError(f"instance_type: {instance_type!r} is not offered in {client.region}")
    supported = (types[0].get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
    arch = (image or {}).get("Architecture")
    if arch and supported and arch not in supported:
        raise TaskError(
            f"instance_type: {instance_type!r} runs {'/'.join(supported)} but image {image['ImageId']} is {arch}"
        )
    error = image_type_mismatch(image, types[0])
    if error:
        raise TaskError(error)


def volumes_of(
    client: AwsClient, instances: Iterable[dict[str, Any]], volumes: Sequence[dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``{volume_id: volume}`` of the instances' volumes, when ``volumes`` (the option) needs comparing.

    Asked for with a ``volume-id`` filter, not ``VolumeIds``: EC2 fails a whole ``VolumeIds`` request when one of them
    is gone (an instance terminated since it was described deletes its volumes) or not visible yet (a volume of an
    instance just launched); a volume missing here is not compared (no drift), the others still are."""
    if not volumes:
        return {}
    ids = sorted(
        m["Ebs"]["VolumeId"]
        for inst in instances
        for m in inst.get("BlockDeviceMappings") or ()
        if m.get("Ebs", {}).get("VolumeId")
    )
    if not ids:
        return {}
    return {
        vol["VolumeId"]: vol
        for part in chunks(ids)
        for vol in client.paginate("describe_volumes", "Volumes", Filters=[{"Name": "volume-id", "Values": part}])
    }


# --- waits ------------------------------------------------------------------------------------------


def wait_visible(
    client: AwsClient, ids: Iterable[str], launched: Iterable[str], timeout: float = CONSISTENCY_TIMEOUT
) -> list[dict[str, Any]]:
    """The instances ``ids``, once EC2 shows every one of ``launched`` (just launched by this run)."""
    wanted = set(launched)
    return wait_until(
        lambda: describe_ids(client, ids),
        lambda found: wanted <= {inst["InstanceId"] for inst in found},
        timeout,
        f"{len(wanted)} new instance(s) to be visible",
        describe=lambda found: describe_states(found, sorted(wanted)),
    )


def wait_for_state(
    client: AwsClient, ids: Sequence[str], state: str, timeout: float, kms_keys: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Wait until every instance in ``ids`` is in ``state`` (``terminated``: or gone); return them.

    An instance that dies on the way fails the wait at once with its reason; one EC2 terminated because it could not
    use a KMS key says so, naming the keys (``kms_keys``: those the launch named; the account's default key too)."""

    dead = {"shutting-down", "terminated"} | ({"stopped"} if state == "running" else set())
    booting: set[str] = set()  # seen pending or running in this wait

    def check(instances: list[dict[str, Any]]) -> bool:
        seen = {inst["InstanceId"]: inst for inst in instances}
        for iid in ids:
            inst = seen.get(iid)
            if inst is None:
                if state == "terminated":
                    continue
                return False
            current = inst["State"]["Name"]
            reason = inst.get("StateReason") or {}
            # A stopped instance has died on its way to running (failed boot, shutdown from inside), unless
            # this is a stale answer from before a StartInstances: stopped by its user, not seen booting yet.
            stale = current == "stopped" and iid not in booting
            stale = stale and reason.get("Code") == "Client.UserInitiatedShutdown"
            if state != "terminated" and current in dead and not stale:
                message = reason.get("Message", "no reason given")
                if reason.get("Code") in KMS_STATE_CODES:
                    message += (
                        f" (KMS: EC2 could not use the key that encrypts its volumes, "
                        f"{describe_kms_keys(client, kms_keys)}; the caller needs {KMS_NEEDS})"
                    )
                raise TaskError(f"instance {iid} went to {current} while waiting for {state}: {message}")
            if current in ("pending", "running"):
                booting.add(iid)
            if current != state:
                return False
        return True

    return wait_until(
        lambda: describe_ids(client, ids),
        check,
        timeout,
        f"{len(ids)} instance(s) to be {state}",
        describe=lambda instances: describe_states(instances, ids),
        # An instance boots in seconds, and whatever waits on it (a registration, a health check, SSH) starts only
        # then: asking once a second at most (one DescribeInstances for all of ids) ends the wait within a second.
        max_delay=1.0,
    )


# --- changing the group -----------------------------------------------------------------------------


class Fleet:
    """The group's instances: terminate the surplus, launch the missing, reconcile the kept, wait for states.

    Every change goes through ``changes`` (:class:`Changes`), so check mode changes nothing. ``spec``: what the
    instances are (:class:`LaunchSpec`); ``warn`` gives the user a warning.
    """

    def __init__(self, changes: Changes, spec: LaunchSpec, warn: Callable[[str], None]) -> None:
        self.changes = changes
        self.client = changes.client
        self.spec = spec
        self.warn = warn
        self.launched: list[str] = []
        self.terminated: list[str] = []
        self.touched = False  # whether an instance was changed (so their state must be read again)

    def act(
        self, change: str, operation: str, created_codes: Collection[str] = (), **request: Any
    ) -> dict[str, Any] | None:
        self.touched = True
        return self.changes.act(change, operation, created_codes, **request)

    def wait(self, ids: Sequence[str], state: str) -> list[dict[str, Any]] | None:
        if ids and self.spec.wait and not self.changes.check_mode:
            return self.wait_for(ids, state)
        return None

    def wait_for(self, ids: Sequence[str], state: str) -> list[dict[str, Any]]:
        """Wait until each of ``ids`` is in ``state``, whatever ``wait`` says (what follows needs it)."""
        spec = self.spec
        return wait_for_state(self.client, ids, state, spec.wait_timeout, named_kms_keys(spec.volumes))

    def protection(self, instances: Iterable[dict[str, Any]]) -> dict[str, bool]:
        """``{instance_id: DisableApiTermination}`` when termination_protection is managed."""
        if self.spec.termination_protection is None:
            return {}
        return {
            inst["InstanceId"]: self.client.call(
                "describe_instance_attribute", Attribute="disableApiTermination", InstanceId=inst["InstanceId"]
            )["DisableApiTermination"]["Value"]
            for inst in instances
        }

    def terminate(self, instances: Sequence[dict[str, Any]]) -> None:
        if not instances:
            return
        ids = [inst["InstanceId"] for inst in instances]
        if self.spec.termination_protection is False:
            for iid, protected in self.protection(instances).items():
                if protected:
                    self.act(
                        f"remove termination protection of {iid}",
                        "modify_instance_attribute",
                        InstanceId=iid,
                        DisableApiTermination={"Value": False},
                    )
        self.act(f"terminate {', '.join(ids)}", "terminate_instances", InstanceIds=ids)
        self.terminated += ids

    def launch(
        self,
        missing: int,
        subnets: Sequence[dict[str, Any]],
        current_ids: Sequence[str],
        groups: list[str] | None,
        image: dict[str, Any] | None,
        created_codes: Collection[str],
        salt: str = "",
    ) -> list[str]:
        """Launch ``missing`` instances in the first of ``subnets`` (one VPC, best first) that takes them.

        When EC2 answers Unsupported or InsufficientInstanceCapacity, the next zone that offers the type is
        tried with its own (as deterministic) client token. ``current_ids``: the group's instances before;
        ``groups``: the security group IDs of the new ones; ``created_codes``: NotFound codes of what this
        run just created that RunInstances names (retried: EC2 is eventually consistent); ``salt``: what else the
        launch is for (its client token is its own). Returns the IDs launched (none in check mode).
        """

        def request(subnet: dict[str, Any], token: str) -> dict[str, Any]:
            return build_run_request(self.spec, subnet["SubnetId"], groups, missing, token, image)

        tried = []
        for index, subnet in enumerate(subnets):
            zone = subnet["AvailabilityZone"]
            try:
                zone_salt = salt + (f"zone:{zone}|" if index else "")
                return self.launch_in(subnet, zone_salt, current_ids, request, created_codes)
            except AwsError as err:
                if err.code not in ZONE_CAPACITY_CODES or len(subnets) == 1:
                    raise
                tried.append(f"{zone} ({err.code})")
                if index + 1 < len(subnets):
                    self.warn(
                        f"{err.code} for {self.spec.instance_type} in {zone}: "
                        f"trying {subnets[index + 1]['AvailabilityZone']}"
                    )
        raise TaskError(
            f"no zone could launch {missing} {self.spec.instance_type} instance(s); tried {', '.join(tried)}"
        )

    def launch_spread(
        self,
        plan: Iterable[tuple[Sequence[dict[str, Any]], int]],
        current_ids: Sequence[str],
        groups: list[str] | None,
        image: dict[str, Any] | None,
        created_codes: Collection[str],
        salt: str = "",
    ) -> list[str]:
        """Launch what ``plan`` (:func:`_placement.spread`) puts in each zone, each zone's instances with
        :meth:`launch` (their own client token; the next zone of the plan's order when the zone has no capacity).
        Returns the IDs launched."""
        ids = []
        for tried, count in plan:
            zone_salt = f"{salt}spread:{tried[0]['AvailabilityZone']}|"
            ids += self.launch(count, tried, current_ids, groups, image, created_codes, zone_salt)
        return ids

    def launch_in(
        self,
        subnet: dict[str, Any],
        zone_salt: str,
        current_ids: Sequence[str],
        request_for: Callable[[dict[str, Any], str], dict[str, Any]],
        created_codes: Collection[str],
    ) -> list[str]:
        """One RunInstances into ``subnet``, with a client token derived again when EC2 refuses the one used."""
        spec = self.spec
        salt = zone_salt
        for _attempt in range(TOKEN_HOPS):
            token = client_token(spec.name, self.client.region, subnet["VpcId"], current_ids, spec.count, salt)
            request = request_for(subnet, token)
            change = f"launch {request['MinCount']} instance(s) in {subnet['SubnetId']}"
            if self.changes.check_mode:
                self.changes.will(change)
                return []
            try:
                # Retrying RunInstances is safe: the client token makes EC2 launch at most once.
                reply = self.client.call_created("run_instances", created_codes, **request)
            except AwsError as err:
                if err.code != "IdempotentParameterMismatch":
                    raise
                # The token was used before with other parameters; derive a new one, just as deterministic.
                request.pop("ClientToken")
                salt = (
                    zone_salt
                    + "params:"
                    + hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
                )
                continue
            instances = reply.get("Instances", [])
            if any(inst["State"]["Name"] in ("pending", "running") for inst in instances):
                self.changes.will(change)
                self.touched = True
                ids = [inst["InstanceId"] for inst in instances]
                self.launched += ids
                return ids
            # An old token: EC2 handed back instances of an earlier launch that are gone since. The next token is
            # derived from them, so every launch of the group since EC2 last forgot a token is one link of a chain
            # that concurrent runs and reruns walk alike, up to its first unused token.
            salt = zone_salt + "stale:" + ",".join(sorted(inst["InstanceId"] for inst in instances))
        raise TaskError(
            f"RunInstances kept answering with instances that are gone, {TOKEN_HOPS} client tokens in a row "
            f"(the last {token}): the group {spec.name} was launched and terminated that often since EC2 last "
            "forgot a token (at least 24 hours after termination); rerun later or give the group another name"
        )

    def reconcile(
        self, instances: Sequence[dict[str, Any]], groups: list[str] | None, group_codes: Collection[str] = ()
    ) -> None:
        """Tags, security groups (``groups``: exact IDs, or None to leave them), termination protection and
        metadata options of existing ``instances``, in place. ``group_codes``: NotFound codes of a group
        this run created."""
        spec = self.spec
        protected = self.protection(instances)
        desired_tags = launch_tags(spec) if spec.tags is not None else None
        for inst in instances:
            iid = inst["InstanceId"]
            if desired_tags is not None:
                to_set, to_unset = compare_tags(
                    tags_to_dict(inst.get("Tags")), desired_tags, spec.purge_tags, keep=("Name",)
                )
                if to_set:
                    self.act(
                        f"tag {iid} with {', '.join(sorted(to_set))}",
                        "create_tags",
                        Resources=[iid],
                        Tags=dict_to_tags(to_set),
                    )
                if to_unset:
                    self.act(
                        f"remove tags {', '.join(to_unset)} from {iid}",
                        "delete_tags",
                        Resources=[iid],
                        Tags=[{"Key": key} for key in to_unset],
                    )
            if groups is not None and sorted(g["GroupId"] for g in inst.get("SecurityGroups", [])) != sorted(groups):
                self.act(
                    f"set security groups of {iid} to {', '.join(groups)}",
                    "modify_instance_attribute",
                    group_codes,
                    InstanceId=iid,
                    Groups=groups,
                )
            if iid in protected and protected[iid] != spec.termination_protection:
                self.act(
                    f"set termination protection of {iid} to {spec.termination_protection}",
                    "modify_instance_attribute",
                    InstanceId=iid,
                    DisableApiTermination={"Value": spec.termination_protection},
                )
            changes = metadata_changes(inst.get("MetadataOptions"), spec.metadata_options)
            if changes:
                self.act(
                    f"set metadata options of {iid}: {', '.join(f'{k}={v}' for k, v in sorted(changes.items()))}",
                    "modify_instance_metadata_options",
                    InstanceId=iid,
                    **changes,
                )

    def apply_state(self, instances: Iterable[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Start or stop ``instances`` (existing ones by their last known state, new ones as pending)."""
        states = {inst["InstanceId"]: inst["State"]["Name"] for inst in instances}
        states.update((iid, "pending") for iid in self.launched)
        ids = list(states)
        if all(state == self.spec.state for state in states.values()):
            return None
        if self.spec.state == "running":
            to_start = [iid for iid, state in states.items() if state in ("stopping", "stopped")]
            if to_start:
                self.wait([iid for iid in to_start if states[iid] == "stopping"], "stopped")
                self.act(f"start {', '.join(to_start)}", "start_instances", InstanceIds=to_start)
            return self.wait(ids, "running")
        to_stop = [iid for iid, state in states.items() if state in ("pending", "running")]
        if to_stop:
            self.wait([iid for iid in to_stop if states[iid] == "pending"], "running")
            fresh = INSTANCE_NOT_FOUND if set(to_stop) & set(self.launched) else ()
            self.act(f"stop {', '.join(to_stop)}", "stop_instances", fresh, InstanceIds=to_stop)
        return self.wait(ids, "stopped")
