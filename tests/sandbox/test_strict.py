"""The sandbox's strict behaviours, shown on its API front without hosts (no root, no lock).

One API front (tests/reliability/apiserver.py: the sandbox's own middleware over moto) runs with IAM
enforced and a consistency window; every test resets it. What needs real hosts (per-region base image
IDs, guest egress, the reboot of CreateImage) is in test_sandbox.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import iam, strict
from sandbox.services.ec2 import ec2_arn

_spec = importlib.util.spec_from_file_location("bakery_integration_conftest", ROOT / "tests/integration/conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)

WINDOW, SEED = 4.0, 7
COLLECTIONS = ROOT / ".build" / "collections"
POLICY = json.loads((ROOT / "docs" / "iam-policy.json").read_text())


@contextlib.contextmanager
def api_front(tmp_path_factory, window: float):
    work = tmp_path_factory.mktemp("strict")
    amis = work / "amis.json"
    integration.catalogue().write(amis)
    keys = work / "keys.json"
    port = integration.free_port()
    env = dict(
        os.environ,
        MOTO_AMIS_PATH=str(amis),
        SANDBOX_EC_WINDOW=str(window),
        SANDBOX_EC_SEED=str(SEED),
        SANDBOX_IAM_KEYS=str(keys),
    )
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(ROOT / "tests/reliability/apiserver.py"), str(port)]
    with integration.local_server(cmd, env, work / "api.log", f"{url}/_sandbox/status", "API front"):
        deadline = time.monotonic() + 30
        while not keys.exists() or not keys.read_text():
            assert time.monotonic() < deadline, "the API front made no IAM users"
            time.sleep(0.1)
        yield url, {user: tuple(k) for user, k in json.loads(keys.read_text()).items()}


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    with api_front(tmp_path_factory, WINDOW) as out:
        yield out


def client(front, user=iam.ADMIN_USER, service="ec2", region="us-east-1", key=None, validate=True):
    url, keys = front
    key_id, secret = key or keys[user]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=validate),
    )


def code_of(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def delay(resource_id: str) -> float:
    return strict.Consistency(WINDOW, SEED).delay(resource_id)


def made_hidden(make, at_least: float = 1.5, tries: int = 40):
    """Create resources until one gets a window of at least ``at_least`` s; return (id, seconds left)."""
    for _ in range(tries):
        start = time.monotonic()
        rid = make()
        end = time.monotonic()
        if delay(rid) - (end - start) >= at_least:
            return rid, end + delay(rid)  # the window started between start and end
    pytest.fail(f"no window of {at_least} s in {tries} creations (window {WINDOW} s)")


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()) + 0.05)


def catalogue_image(ec2) -> str:
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


# ------------------------------------------------------------------ eventual consistency
def test_new_security_group_is_not_found_by_id_then_is(front):
    ec2 = client(front)
    n = iter(range(1000))
    gid, visible = made_hidden(lambda: ec2.create_security_group(GroupName=f"ec-{next(n)}", Description="d")["GroupId"])
    assert code_of(ec2.describe_security_groups, GroupIds=[gid])[0] == "InvalidGroup.NotFound"
    perm = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    assert code_of(ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=perm)[0] == "InvalidGroup.NotFound"
    run = {"ImageId": catalogue_image(ec2), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    assert code_of(ec2.run_instances, SecurityGroupIds=[gid], **run)[0] == "InvalidGroup.NotFound"
    listed = ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroups"]
    assert listed == []  # a filter leaves it out
    wait_until(visible)
    assert ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["GroupId"] == gid
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=perm)


def test_new_key_pair_instance_and_image_are_not_found_by_id(front):
    ec2 = client(front)
    n = iter(range(1000))
    image = catalogue_image(ec2)
    key, visible = made_hidden(lambda: ec2.create_key_pair(KeyName=f"ec-{next(n)}")["KeyName"])
    run = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    assert code_of(ec2.run_instances, KeyName=key, **run)[0] == "InvalidKeyPair.NotFound"
    assert code_of(ec2.describe_key_pairs, KeyNames=[key])[0] == "InvalidKeyPair.NotFound"
    listed = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [key]}])["KeyPairs"]
    assert listed == []  # a filter leaves it out
    wait_until(visible)
    assert ec2.describe_key_pairs(KeyNames=[key])["KeyPairs"][0]["KeyName"] == key
    ec2.run_instances(KeyName=key, **run)

    iid, visible = made_hidden(lambda: ec2.run_instances(**run)["Instances"][0]["InstanceId"])
    assert code_of(ec2.describe_instances, InstanceIds=[iid])[0] == "InvalidInstanceID.NotFound"
    assert code_of(ec2.create_tags, Resources=[iid], Tags=[{"Key": "a", "Value": "b"}])[0] == (
        "InvalidInstanceID.NotFound"
    )
    assert code_of(ec2.modify_instance_metadata_options, InstanceId=iid, HttpTokens="required")[0] == (
        "InvalidInstanceID.NotFound"
    )
    listed = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert iid not in listed
    wait_until(visible)
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["InstanceId"] == iid

    ami, visible = made_hidden(lambda: ec2.create_image(InstanceId=iid, Name=f"ec-image-{next(n)}")["ImageId"])
    assert code_of(ec2.describe_images, ImageIds=[ami])[0] == "InvalidAMIID.NotFound"
    assert code_of(ec2.run_instances, **dict(run, ImageId=ami))[0] == "InvalidAMIID.NotFound"
    launch = {"Add": [{"UserId": "111122223333"}]}
    assert code_of(ec2.modify_image_attribute, ImageId=ami, LaunchPermission=launch)[0] == "InvalidAMIID.NotFound"
    assert ami not in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    wait_until(visible)
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["ImageId"] == ami


def test_windows_are_seeded_per_resource():
    a, b = strict.Consistency(2.0, 1), strict.Consistency(2.0, 1)
    assert [a.delay(f"sg-{i}") for i in range(20)] == [b.delay(f"sg-{i}") for i in range(20)]
    assert all(0 <= a.delay(f"i-{i}") <= 2.0 for i in range(100))
    assert strict.Consistency(0, 1).delay("sg-1") == 0
    assert a.delay("sg-1") != strict.Consistency(2.0, 2).delay("sg-1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SANDBOX_EC_WINDOW": "-1"}, "SANDBOX_EC_WINDOW: '-1' is not between 0 and 60 seconds"),
        ({"SANDBOX_EC_WINDOW": "soon"}, "SANDBOX_EC_WINDOW: 'soon' is not a number of seconds"),
        ({"SANDBOX_EC_SEED": "x"}, "SANDBOX_EC_SEED: 'x' is not an integer"),
        ({"SANDBOX_ELB_PROVISIONING": "601"}, "SANDBOX_ELB_PROVISIONING: '601' is not between 0 and 600 seconds"),
        ({"SANDBOX_ELB_PROVISIONING": "later"}, "SANDBOX_ELB_PROVISIONING: 'later' is not a number of seconds"),
    ],
)
def test_bad_settings_are_one_line(env, message):
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "up"],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if os.geteuid() != 0:
        pytest.skip("`sandbox up` checks root first")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"sandbox: error: {message}"


# ------------------------------------------------------------------ limits
def test_more_than_200_filter_values_is_filter_limit_exceeded(front):
    ec2 = client(front)
    values = [f"i-{n:017x}" for n in range(201)]
    code, message = code_of(ec2.describe_instances, Filters=[{"Name": "instance-id", "Values": values}])
    assert code == "FilterLimitExceeded"
    assert "200" in message
    ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": values[:200]}])


@pytest.mark.parametrize(
    ("action", "low", "high"),
    [("describe_instances", 5, 1000), ("describe_images", 6, 1000), ("describe_instance_types", 5, 100)],
)
def test_max_results_bounds(front, action, low, high):
    call = getattr(client(front, validate=False), action)  # botocore knows some minimums itself
    for bad in (low - 1, high + 1):
        code, message = code_of(call, MaxResults=bad)
        assert code == "InvalidParameterValue"
        assert f"Value ( {bad} ) for parameter maxResults is invalid. Expecting a value between {low} and {high}." == (
            message
        )
    call(MaxResults=low)
    call(MaxResults=high)


# ------------------------------------------------------------------ zone offerings
def test_type_not_offered_in_zone_is_unsupported(front):
    ec2 = client(front)
    zones = {
        o["Location"]
        for o in ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}]
        )["InstanceTypeOfferings"]
    }
    assert "us-east-1a" in zones
    assert "us-east-1e" not in zones
    run = {"ImageId": catalogue_image(ec2), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    code, message = code_of(ec2.run_instances, Placement={"AvailabilityZone": "us-east-1e"}, **run)
    assert code == "Unsupported"
    assert "(t3.micro) is not supported in your requested Availability Zone (us-east-1e)" in message
    ec2.run_instances(**run)  # the default placement (us-east-1a) offers it


def test_zone_capacity_fault_and_unknown_zone(front):
    url, _keys = front
    ec2 = client(front)
    req = urllib.request.Request(
        f"{url}/_sandbox/faults", data=json.dumps({"zone": "us-east-1b", "count": 1}).encode(), method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()
    run = {"ImageId": catalogue_image(ec2), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    code, message = code_of(ec2.run_instances, Placement={"AvailabilityZone": "us-east-1b"}, **run)
    assert code == "InsufficientInstanceCapacity"
    assert "(us-east-1b)" in message
    ec2.run_instances(Placement={"AvailabilityZone": "us-east-1b"}, **run)  # count 1: the next one works
    bad = urllib.request.Request(
        f"{url}/_sandbox/faults", data=json.dumps({"zone": "us-east-1z"}).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=10)
    text = json.loads(err.value.read())["error"]
    assert text.startswith("unknown availability zone 'us-east-1z' in a fault (known: us-east-1a")
    assert "\n" not in text


# ------------------------------------------------------------------ images
def test_copy_image_new_id_and_client_token(front):
    east, west = client(front), client(front, region="eu-west-1")
    source = catalogue_image(east)
    first = west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="copy-a", ClientToken="tok-1")
    assert first["ImageId"] != source
    again = west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="copy-a", ClientToken="tok-1")
    assert again["ImageId"] == first["ImageId"]
    code, _ = code_of(
        west.copy_image, SourceImageId=source, SourceRegion="us-east-1", Name="copy-b", ClientToken="tok-1"
    )
    assert code == "IdempotentParameterMismatch"
    other = west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="copy-a", ClientToken="tok-2")
    assert other["ImageId"] != first["ImageId"]


# ------------------------------------------------------------------ IAM
def test_least_privilege_user_may_do_what_the_policy_names_only(front):
    ec2 = client(front, iam.USER)
    ec2.describe_instances()
    code, message = code_of(ec2.create_vpc, CidrBlock="10.9.0.0/16")
    assert code == "UnauthorizedOperation"
    assert "\n" not in message
    assert f"User: arn:aws:iam::123456789012:user/{iam.USER} is not authorized to perform: ec2:CreateVpc " in message
    encoded = message.rsplit("Encoded authorization failure message: ", 1)[1]
    decoded = client(front, iam.USER, "sts").decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"]
    assert json.loads(decoded)["context"]["action"] == "ec2:CreateVpc"
    assert code_of(client(front, iam.USER, "iam").create_user, UserName="escalate")[0] == "AccessDenied"
    identity = client(front, iam.USER, "sts").get_caller_identity()
    assert identity["Arn"].endswith(f":user/{iam.USER}")


def test_wrong_secret_is_auth_failure(front):
    _url, keys = front
    ec2 = client(front, key=(keys[iam.USER][0], "not-the-secret"))
    assert code_of(ec2.describe_instances)[0] == "AuthFailure"


def test_policy_names_every_action_one_by_one():
    actions = [a for s in POLICY["Statement"] for a in s["Action"]]
    assert all("*" not in a for a in actions)
    assert len(actions) == len(set(actions))
    for needed in ("ec2:CreateTags", "ec2:DescribeInstanceTypeOfferings", "sts:DecodeAuthorizationMessage"):
        assert needed in actions


def policy_without(action: str) -> str:
    doc = json.loads(json.dumps(POLICY))
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    doc["Statement"] = [s for s in doc["Statement"] if s["Action"]]  # IAM refuses a statement without actions
    return json.dumps(doc)


def user_with(front, name: str, policy: str) -> tuple[str, str]:
    admin = client(front, service="iam")
    admin.create_user(UserName=name)
    admin.put_user_policy(UserName=name, PolicyName="variant", PolicyDocument=policy)
    key = admin.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def module_env(front, key) -> dict:
    url, _ = front
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=key[0],
        AWS_SECRET_ACCESS_KEY=key[1],
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
    )
    return env


def public_key(tmp_path: Path) -> str:
    key = tmp_path / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return key.with_suffix(".pub").read_text().strip()


def run_launch(front, key, tmp_path, name: str) -> dict:
    """The flow's launch step (playbooks/launch.yml's ec2_launch task) as that user."""
    ec2 = client(front)
    base = ec2.describe_images(Owners=["136693071363"])["Images"][0]
    args = {
        "name": name,
        "count": 1,
        "image_id": base["ImageId"],
        "instance_type": "t3.micro",
        "volumes": [{"device_name": base["RootDeviceName"]}],
        "key_name": name,
        "public_key": public_key(tmp_path),
        "firewall": [{"proto": "tcp", "ports": "22", "cidr": "10.0.0.0/8"}],
        "tags": {"BakeryRole": "source"},
        "wait": False,
    }
    return run_ec2_launch(front, key, tmp_path / f"{name}.json", args)


def run_ec2_launch(front, key, argfile: Path, args: dict, timeout: float = 120) -> dict:
    """ec2_launch with ``args`` as the user of ``key``; its result (or the end of its stderr, as failed)."""
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.bakery.ec2.plugins.modules.ec2_launch", str(argfile)],
        env=module_env(front, key),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=argfile.parent,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"failed": True, "msg": proc.stderr[-500:]}


@pytest.mark.parametrize("action", ["ec2:CreateTags", "ec2:AuthorizeSecurityGroupIngress", "ec2:RunInstances"])
def test_policy_is_minimal_the_launch_step_names_the_missing_action(front, tmp_path, action):
    short = action.split(":")[1]
    key = user_with(front, f"minus-{short}", policy_without(action))
    result = run_launch(front, key, tmp_path, f"minus-{short.lower()}")
    assert result.get("failed"), result
    msg = str(result.get("msg", ""))
    assert "\n" not in msg
    assert action in msg, msg


def test_policy_is_complete_for_the_launch_step(front, tmp_path):
    _url, keys = front
    result = run_launch(front, keys[iam.USER], tmp_path, "full-policy")
    assert not result.get("failed"), result.get("msg")


def test_create_image_accepts_snapshot_tag_specifications(front):
    """AWS accepts TagSpecifications for the image's snapshots (moto does not); tagging needs ec2:CreateTags."""
    ec2 = client(front)
    run = {"ImageId": catalogue_image(ec2), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    iid = ec2.run_instances(**run)["Instances"][0]["InstanceId"]
    specs = [
        {"ResourceType": "image", "Tags": [{"Key": "Kind", "Value": "image"}]},
        {"ResourceType": "snapshot", "Tags": [{"Key": "Kind", "Value": "snapshot"}]},
    ]
    wait_until(time.monotonic() + WINDOW)  # the instance's own window
    ami = ec2.create_image(InstanceId=iid, Name="snapshot-tags", NoReboot=True, TagSpecifications=specs)["ImageId"]
    wait_until(time.monotonic() + WINDOW)
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert {"Key": "Kind", "Value": "image"} in image["Tags"]
    snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    tags = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["Tags"]
    assert {"Key": "Kind", "Value": "snapshot"} in tags


def test_status_lists_what_is_still_hidden_and_for_how_long(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(strict.time, "monotonic", lambda: now[0])
    windows = strict.Consistency(2.0, 1)
    windows.created("us-east-1", "instance", "i-1")
    windows.created("us-east-1", "image", "ami-1")
    assert windows.hidden_now() == {"i-1": round(windows.delay("i-1"), 3), "ami-1": round(windows.delay("ami-1"), 3)}
    now[0] += max(windows.delay("i-1"), windows.delay("ami-1"))
    assert windows.hidden_now() == {}
    assert strict.Consistency(0, 1).hidden_now() == {}


# ------------------------------------------------------------------ IAM conditions, end to end
def policy_with(*statements: dict, without: str = "") -> str:
    doc = json.loads(policy_without(without)) if without else json.loads(json.dumps(POLICY))
    doc["Statement"] += list(statements)
    return json.dumps(doc)


def decoded_context(front, message: str) -> dict[str, list[str]]:
    encoded = message.rsplit("Encoded authorization failure message: ", 1)[1]
    decoded = client(front, service="sts").decode_authorization_message(EncodedMessage=encoded)["DecodedMessage"]
    items = json.loads(decoded)["context"]["conditions"]["items"]
    return {i["key"]: [v["value"] for v in i["values"]["items"]] for i in items}


def test_a_region_condition_denies_the_other_regions(front):
    deny_elsewhere = {"Sid": "OnlyUsEast1", "Effect": "Deny", "Action": "*", "Resource": "*",
                      "Condition": {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}}  # fmt: skip
    key = user_with(front, "one-region", policy_with(deny_elsewhere))
    client(front, key=key).describe_instances()
    code, message = code_of(client(front, key=key, region="us-west-2").describe_instances)
    assert code == "UnauthorizedOperation" and "\n" not in message
    assert "ec2:DescribeInstances" in message and "with an explicit deny" in message
    context = decoded_context(front, message)
    assert context["aws:RequestedRegion"] == ["us-west-2"] and context["ec2:Region"] == ["us-west-2"]


def test_tagging_allowed_only_at_creation_is_enough_for_the_launch_step(front, tmp_path):
    """EC2's "tag on create" policy: ec2:CreateTags only with ec2:CreateAction. ec2_launch tags at creation only
    (RunInstances, CreateSecurityGroup, ImportKeyPair), so the launch step needs no more; tagging an existing
    instance is refused."""
    on_create = {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
                 "Condition": {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateSecurityGroup",
                                                                     "ImportKeyPair"]}}}  # fmt: skip
    key = user_with(front, "tag-on-create", policy_with(on_create, without="ec2:CreateTags"))
    result = run_launch(front, key, tmp_path, "tag-on-create")
    assert not result.get("failed"), result.get("msg")
    (iid,) = result["instance_ids"]
    code, message = code_of(client(front, key=key).create_tags, Resources=[iid], Tags=[{"Key": "k", "Value": "v"}])
    assert code == "UnauthorizedOperation" and "ec2:CreateTags" in message, message
    only_instances = dict(on_create, Condition={"StringEquals": {"ec2:CreateAction": "RunInstances"}})
    key = user_with(front, "tag-instances-only", policy_with(only_instances, without="ec2:CreateTags"))
    result = run_launch(front, key, tmp_path, "tag-instances-only")
    assert result.get("failed") and "ec2:CreateTags" in str(result.get("msg")), result


def test_a_required_request_tag(front):
    """Deny RunInstances without a BakeryRole tag (Null), and with one outside the allowed values (IfExists)."""
    require = [
        {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*",
         "Condition": {"Null": {"aws:RequestTag/BakeryRole": "true"}}},
        {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*",
         "Condition": {"StringNotEqualsIfExists": {"aws:RequestTag/BakeryRole": ["source", "clone"]}}},
    ]  # fmt: skip
    ec2 = client(front, key=user_with(front, "tag-required", policy_with(*require)))
    run = {"ImageId": catalogue_image(client(front)), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    assert code_of(ec2.run_instances, **run)[0] == "UnauthorizedOperation"

    def tagged(value: str) -> dict:
        tags = [{"Key": "BakeryRole", "Value": value}]
        return dict(run, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])

    assert code_of(ec2.run_instances, **tagged("other"))[0] == "UnauthorizedOperation"
    assert ec2.run_instances(**tagged("clone"))["Instances"][0]["InstanceId"].startswith("i-")


# ------------------------------------------------------------------ instance actions, on each instance and its tags
INSTANCE_CHANGES = ["ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances",
                    "ec2:ModifyInstanceAttribute", "ec2:ModifyInstanceMetadataOptions"]  # fmt: skip


def team_web_only() -> dict:
    """Changing an instance is allowed only on instances tagged Team=web (``ec2:ResourceTag/Team``)."""
    team = {"StringEquals": {"ec2:ResourceTag/Team": "web"}}
    return {"Sid": "TeamWebInstances", "Effect": "Allow", "Action": INSTANCE_CHANGES,
            "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": team}  # fmt: skip


def visible_instance(ec2, tags: dict[str, str] | None = None) -> str:
    """An instance launched by the administrator with ``tags``, once the API names it."""
    run = {"ImageId": catalogue_image(ec2), "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    if tags:
        run["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    instance_id = ec2.run_instances(**run)["Instances"][0]["InstanceId"]
    wait_until(time.monotonic() + delay(instance_id))  # the window started before the answer came
    return instance_id


def test_instance_actions_are_authorized_on_each_instance_and_its_tags(front):
    """Stop, start, terminate and the other instance actions name each instance they act on: a policy can allow them
    on instances with a tag only (ec2:ResourceTag/KEY, aws:ResourceTag/KEY), one instance it does not allow refuses
    the whole call, and the tags are read as they are at the time of the call."""
    admin = client(front)
    web = visible_instance(admin, {"Team": "web", "Stage": "prod"})
    other = visible_instance(admin)
    protect_prod = {"Sid": "KeepProd", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/Stage": "prod"}}}  # fmt: skip
    describe = {
        "Effect": "Allow",
        "Action": ["ec2:DescribeInstances", "sts:DecodeAuthorizationMessage"],
        "Resource": "*",
    }
    doc = {"Version": "2012-10-17", "Statement": [describe, team_web_only(), protect_prod]}
    ec2 = client(front, key=user_with(front, "team-web", json.dumps(doc)))

    ec2.stop_instances(InstanceIds=[web])
    code, message = code_of(ec2.stop_instances, InstanceIds=[other])
    assert code == "UnauthorizedOperation" and "\n" not in message
    assert f"ec2:StopInstances on resource: {ec2_arn('us-east-1', 'instance', other)} " in message
    assert not any(k.startswith(("ec2:ResourceTag/", "aws:ResourceTag/")) for k in decoded_context(front, message))

    code, message = code_of(ec2.terminate_instances, InstanceIds=[web, other])
    assert code == "UnauthorizedOperation" and "with an explicit deny" in message  # Stage=prod, checked first
    context = decoded_context(front, message)
    assert context["ec2:ResourceTag/Team"] == ["web"] and context["aws:ResourceTag/Stage"] == ["prod"]
    admin.delete_tags(Resources=[web], Tags=[{"Key": "Stage"}])
    code, message = code_of(ec2.terminate_instances, InstanceIds=[web, other])
    assert code == "UnauthorizedOperation" and ec2_arn("us-east-1", "instance", other) in message  # other: no Team
    reservations = admin.describe_instances(InstanceIds=[web, other])["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    assert states[web] in ("stopping", "stopped") and states[other] in ("pending", "running"), states
    ec2.terminate_instances(InstanceIds=[web])


FIREWALL_CHANGES = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]


def own_firewalls_only() -> dict:
    """Changing a security group is allowed only on the groups ec2_launch made (tagged ManagedBy at creation)."""
    managed = {"StringEquals": {"ec2:ResourceTag/ManagedBy": "bakery.ec2.ec2_launch"}}
    return {"Sid": "ItsOwnFirewalls", "Effect": "Allow", "Action": FIREWALL_CHANGES,
            "Resource": "arn:aws:ec2:*:*:security-group/*", "Condition": managed}  # fmt: skip


def test_launch_step_works_with_changes_limited_to_its_own_resources(front, tmp_path):
    """The collection's policy with instance changes allowed only on instances tagged Team=web and firewall changes
    only on the groups ec2_launch made: ec2_launch, which tags what it makes at creation, still scales its group
    down and changes its firewall; someone else's group stays out of reach."""
    doc = json.loads(json.dumps(POLICY))
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a not in INSTANCE_CHANGES + FIREWALL_CHANGES]
    doc["Statement"] += [team_web_only(), own_firewalls_only()]
    key = user_with(front, "launch-team-web", json.dumps(doc))
    ec2 = client(front)
    base = ec2.describe_images(Owners=["136693071363"])["Images"][0]
    args = {"name": "team-web", "count": 2, "image_id": base["ImageId"], "instance_type": "t3.micro",
            "key_name": "team-web", "public_key": public_key(tmp_path), "tags": {"Team": "web"},
            "firewall": [{"ports": 80, "cidr": "10.0.0.0/8"}]}  # fmt: skip
    up = run_ec2_launch(front, key, tmp_path / "up.json", args)
    assert not up.get("failed"), up.get("msg")
    changed = dict(args, count=1, firewall=[{"ports": 8080, "cidr": "10.0.0.0/8"}])
    down = run_ec2_launch(front, key, tmp_path / "down.json", changed)
    assert not down.get("failed"), down.get("msg")
    assert len(down["instance_ids"]) == 1 and set(down["instance_ids"]) < set(up["instance_ids"])
    (gone,) = set(up["instance_ids"]) - set(down["instance_ids"])
    (inst,) = [i for r in ec2.describe_instances(InstanceIds=[gone])["Reservations"] for i in r["Instances"]]
    assert inst["State"]["Name"] in ("shutting-down", "terminated")
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["team-web"]}])["SecurityGroups"]
    assert [(p["FromPort"], p["ToPort"]) for p in group["IpPermissions"]] == [(8080, 8080)]

    other = ec2.create_security_group(GroupName="someone-elses", Description="not made by ec2_launch")["GroupId"]
    wait_until(time.monotonic() + delay(other))
    rule = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    code, message = code_of(client(front, key=key).authorize_security_group_ingress, GroupId=other, IpPermissions=rule)
    assert code == "UnauthorizedOperation"
    arn = f"arn:aws:ec2:us-east-1:{iam.config.ACCOUNT_ID}:security-group/{other}"
    assert f"ec2:AuthorizeSecurityGroupIngress on resource: {arn} " in message


def test_images_and_snapshots_are_authorized_with_their_tags(front):
    """DeregisterImage and DeleteSnapshot name the image or snapshot (ARNs without an account, as EC2's are) and
    see its tags: a policy can let them remove only what a flow baked."""
    admin = client(front)
    source = visible_instance(admin)

    def baked(name: str, tags: dict[str, str] | None) -> str:
        spec = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
        extra = (
            {"TagSpecifications": [{"ResourceType": t, "Tags": spec} for t in ("image", "snapshot")]} if tags else {}
        )
        image_id = admin.create_image(InstanceId=source, Name=name, NoReboot=True, **extra)["ImageId"]
        wait_until(time.monotonic() + delay(image_id))
        return image_id

    flows, other = baked("flow-web-1", {"BakeryFlow": "web"}), baked("someone-elses-1", None)
    remove = {"Effect": "Allow", "Action": ["ec2:DeregisterImage", "ec2:DeleteSnapshot"], "Resource": "*",
              "Condition": {"StringLike": {"aws:ResourceTag/BakeryFlow": "*"}}}  # fmt: skip
    ec2 = client(
        front, key=user_with(front, "flow-images", json.dumps({"Version": "2012-10-17", "Statement": [remove]}))
    )
    code, message = code_of(ec2.deregister_image, ImageId=other)
    assert code == "UnauthorizedOperation" and f"on resource: arn:aws:ec2:us-east-1::image/{other} " in message
    (image,) = admin.describe_images(ImageIds=[other])["Images"]
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    code, message = code_of(ec2.delete_snapshot, SnapshotId=snapshot)
    assert code == "UnauthorizedOperation" and f"arn:aws:ec2:us-east-1::snapshot/{snapshot} " in message
    ec2.deregister_image(ImageId=flows)
    assert admin.describe_images(ImageIds=[other])["Images"]
