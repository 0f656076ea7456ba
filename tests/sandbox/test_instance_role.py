"""Instance roles on the sandbox's API front, without hosts (no root, no lock): profiles at launch, iam:PassRole,
the role's temporary credentials (as IMDS serves them), IAM evaluated with resource ARNs for DynamoDB and S3,
expiry, and the guests' listener. What needs real hosts (IMDSv2 inside a host, reach from a guest) is in
test_instance_role_hosts.py.

The front runs in this process (moto + the sandbox's middleware, IAM enforced, no consistency window) so that a
test can move the sandbox's clock; a second listener on 127.0.0.2 stands for the guests' address (another Host
header, the same signatures).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import config, iam, server
from sandbox.services import dynamodb, ec2
from sandbox.services import iam as services_iam
from sandbox.services import s3 as services_s3
from sandbox.services.base import parse

ACCOUNT = config.ACCOUNT_ID
REGION = "us-east-1"
TABLE, OTHER_TABLE = "directory", "someone-elses"
BUCKET, OTHER_BUCKET = "directory-photos", "someone-elses-photos"
ROLE, PROFILE = "directory-web", "directory-web"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# What the flow gives the app's role: its table (and indexes) and its bucket, nothing else.
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan",
                       "dynamodb:DescribeTable"],
            "Resource": [TABLE_ARN, f"{TABLE_ARN}/index/*"],
        },
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/readonly/*"},
    ],
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def front():
    """The API front in this process: (core, endpoint, guest endpoint, keys)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from sandbox.core import Core
    from sandbox.middleware import Middleware

    port = _free_port()
    core = Core(port, {}, window=0)
    app = Middleware(DomainDispatcherApplication(create_backend_app), core)
    servers = [make_server("127.0.0.1", port, app, threaded=True),
               make_server("127.0.0.2", port, server.guest_app(app), threaded=True)]  # fmt: skip
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    keys = core.enforce_iam(iam.POLICY_FILE.read_text())
    yield core, f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}", keys
    for srv in servers:
        srv.shutdown()


def client(front, service, key=None, guest=False):
    _core, url, guest_url, keys = front
    key = key or keys[iam.ADMIN_USER]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=guest_url if guest else url,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        aws_session_token=key[2] if len(key) > 2 else None,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    return {"status": err.value.response["ResponseMetadata"]["HTTPStatusCode"], **err.value.response["Error"]}


def user_with(front, name: str, statements: list[dict]) -> tuple[str, str]:
    admin = client(front, "iam")
    admin.create_user(UserName=name)
    doc = {"Version": "2012-10-17", "Statement": statements}
    admin.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(doc))
    key = admin.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def world(front):
    """The flow's resources made as the administrator: table, bucket, role + profile; and someone else's."""
    admin_iam = client(front, "iam")
    admin_iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    admin_iam.put_role_policy(RoleName=ROLE, PolicyName="directory", PolicyDocument=json.dumps(ROLE_POLICY))
    profile = admin_iam.create_instance_profile(InstanceProfileName=PROFILE)["InstanceProfile"]
    admin_iam.add_role_to_instance_profile(InstanceProfileName=PROFILE, RoleName=ROLE)
    ddb, s3 = client(front, "dynamodb"), client(front, "s3")
    for table in (TABLE, OTHER_TABLE):
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                  {"AttributeName": "email", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[{"IndexName": "by-email", "KeySchema": [{"AttributeName": "email",
                                     "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        ddb.put_item(TableName=table, Item={"id": {"S": "1"}, "email": {"S": "ada@example.com"}})
    for bucket in (BUCKET, OTHER_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="photos/1.jpg", Body=b"\xff\xd8 one")
    ec2 = client(front, "ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    run = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    with_role = ec2.run_instances(IamInstanceProfile={"Name": PROFILE}, **run)["Instances"][0]
    without = ec2.run_instances(**run)["Instances"][0]
    return {"profile": profile, "run": run, "with_role": with_role, "without": without}


def describe(front, instance_id: str) -> dict:
    return client(front, "ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def role_key(front, world, instance_id=None) -> tuple[str, str, str]:
    """The role's credentials as IMDS serves them at iam/security-credentials/ROLE."""
    core = front[0]
    meta = core.instance_iam(describe(front, instance_id or world["with_role"]["InstanceId"]))
    doc = json.loads(meta[f"iam/security-credentials/{ROLE}"]())
    return doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"]


# ------------------------------------------------------------------ policy evaluation (pure)
def test_wildcards_star_and_question_mark():
    assert iam.matches("arn:aws:s3:::photos/*", "arn:aws:s3:::photos/a/b.jpg")
    assert not iam.matches("arn:aws:s3:::photos/*", "arn:aws:s3:::photos")
    assert iam.matches("arn:aws:s3:::photo?", "arn:aws:s3:::photos")
    assert not iam.matches("arn:aws:s3:::photo?", "arn:aws:s3:::photo")
    assert not iam.matches("arn:aws:s3:::a.b", "arn:aws:s3:::axb")  # a dot is a dot, not any character
    assert iam.matches("arn:aws:dynamodb:*:*:table/directory", TABLE_ARN)
    assert not iam.matches("arn:aws:dynamodb:*:*:table/directory", TABLE_ARN + "-2")
    assert not iam.matches("arn:aws:s3:::Photos/*", "arn:aws:s3:::photos/a")  # ARNs keep their case
    assert iam.matches("DynamoDB:get*", "dynamodb:GetItem", fold=True)  # actions do not
    assert iam.matches(["s3:Put*", "s3:Get*"], "s3:GetObject", fold=True)


def test_evaluation_explicit_deny_wins_then_allow_else_implicit_deny():
    doc = ROLE_POLICY
    assert iam.evaluate([doc], "dynamodb:GetItem", TABLE_ARN) == iam.ALLOW
    assert iam.evaluate([doc], "dynamodb:Query", f"{TABLE_ARN}/index/by-email") == iam.ALLOW
    assert iam.evaluate([doc], "dynamodb:GetItem", TABLE_ARN.replace(TABLE, OTHER_TABLE)) == iam.IMPLICIT_DENY
    assert iam.evaluate([doc], "dynamodb:DeleteTable", TABLE_ARN) == iam.IMPLICIT_DENY
    assert iam.evaluate([doc], "s3:PutObject", f"arn:aws:s3:::{BUCKET}/photos/2.jpg") == iam.ALLOW
    assert iam.evaluate([doc], "s3:PutObject", f"arn:aws:s3:::{BUCKET}/readonly/x") == iam.EXPLICIT_DENY
    assert iam.evaluate([doc], "s3:ListBucket", f"arn:aws:s3:::{BUCKET}/photos/1.jpg") == iam.IMPLICIT_DENY
    # An action with no resource ("*") needs "Resource": "*"
    assert iam.evaluate([doc], "s3:ListAllMyBuckets", "*") == iam.IMPLICIT_DENY
    everything = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}  # one statement, not a list
    assert iam.evaluate([everything], "s3:ListAllMyBuckets", "*") == iam.ALLOW
    assert iam.evaluate([everything, doc], "s3:PutObject", f"arn:aws:s3:::{BUCKET}/readonly/x") == iam.EXPLICIT_DENY


def test_evaluation_not_action_not_resource_and_conditions():
    not_iam = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret*"}]}
    assert iam.evaluate([not_iam], "s3:GetObject", "arn:aws:s3:::public/x") == iam.ALLOW
    assert iam.evaluate([not_iam], "s3:GetObject", "arn:aws:s3:::secret/x") == iam.IMPLICIT_DENY
    assert iam.evaluate([not_iam], "iam:CreateUser", "*") == iam.IMPLICIT_DENY
    # a statement with a Condition applies only when it holds for the request's keys (tests/sandbox/test_iam_conditions)
    conditional = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                  "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}  # fmt: skip
    assert iam.evaluate([conditional], "s3:GetObject", "arn:aws:s3:::public/x") == iam.IMPLICIT_DENY  # no keys
    secure = {"aws:SecureTransport": ["true"]}
    assert iam.evaluate([conditional], "s3:GetObject", "arn:aws:s3:::public/x", secure) == iam.ALLOW


def test_requests_name_their_resources():
    dyn = dynamodb.dynamodb_requested
    assert dyn(REGION, "GetItem", json.dumps({"TableName": TABLE}).encode()) == [("dynamodb:GetItem", TABLE_ARN)]
    assert dyn(REGION, "Query", json.dumps({"TableName": TABLE, "IndexName": "by-email"}).encode()) == [
        ("dynamodb:Query", f"{TABLE_ARN}/index/by-email")
    ]
    batch = {"RequestItems": {TABLE: [], OTHER_TABLE: []}}
    assert [r for _, r in dyn(REGION, "BatchWriteItem", json.dumps(batch).encode())] == [
        TABLE_ARN,
        TABLE_ARN.replace(TABLE, OTHER_TABLE),
    ]
    transact = {"TransactItems": [{"Put": {"TableName": TABLE}}, {"ConditionCheck": {"TableName": OTHER_TABLE}}]}
    assert [a for a, _ in dyn(REGION, "TransactWriteItems", json.dumps(transact).encode())] == [
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
    ]
    assert dyn(REGION, "ListTables", b"{}") == [("dynamodb:ListTables", "*")]

    def s3(method, path, query="", headers=None, body=b"", host="127.0.0.1:4700"):
        return services_s3.s3_requested(method, host, path, query, headers or {}, body)

    assert s3("GET", "/") == [("s3:ListAllMyBuckets", "*")]
    assert s3("GET", f"/{BUCKET}", "list-type=2&prefix=photos/") == [("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")]
    assert s3("HEAD", f"/{BUCKET}") == [("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")]
    assert s3("PUT", f"/{BUCKET}", "publicAccessBlock") == [("s3:PutBucketPublicAccessBlock", f"arn:aws:s3:::{BUCKET}")]
    assert s3("GET", f"/{BUCKET}/photos/1.jpg") == [("s3:GetObject", f"arn:aws:s3:::{BUCKET}/photos/1.jpg")]
    assert s3("HEAD", f"/{BUCKET}/a") == [("s3:GetObject", f"arn:aws:s3:::{BUCKET}/a")]
    assert s3("DELETE", f"/{BUCKET}/a", "versionId=3") == [("s3:DeleteObjectVersion", f"arn:aws:s3:::{BUCKET}/a")]
    delete = b"<Delete><Object><Key>a</Key></Object><Object><Key>b&amp;c</Key></Object></Delete>"
    assert s3("POST", f"/{BUCKET}", "delete", body=delete) == [
        ("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/a"),
        ("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/b&c"),
    ]
    copy = s3("PUT", f"/{BUCKET}/b", headers={"X-Amz-Copy-Source": f"/{OTHER_BUCKET}/photos%2F1.jpg"})
    assert copy == [("s3:PutObject", f"arn:aws:s3:::{BUCKET}/b"),
                    ("s3:GetObject", f"arn:aws:s3:::{OTHER_BUCKET}/photos/1.jpg")]  # fmt: skip
    # virtual-host style names the bucket in the host
    assert s3("GET", "/photos/1.jpg", host=f"{BUCKET}.s3.us-east-1.amazonaws.com") == [
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/photos/1.jpg")
    ]
    assert s3("GET", "/k", host=f"{BUCKET}.localhost:4700") == [("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k")]


def test_trust_policy_names_who_may_assume():
    assert not iam.trusts(EC2_TRUST, f"arn:aws:iam::{ACCOUNT}:user/someone")
    root = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                           "Action": "sts:AssumeRole"}]}  # fmt: skip
    assert iam.trusts(root, f"arn:aws:iam::{ACCOUNT}:user/someone")
    assert not iam.trusts(root, "arn:aws:iam::999999999999:user/someone")


# ------------------------------------------------------------------ credentials: expiring and refreshed
def test_role_credentials_are_renewed_before_they_expire():
    clock = FakeClock()
    minted = []

    def mint():
        minted.append(len(minted))
        return {"AccessKeyId": f"ASIA{len(minted):016d}", "SecretAccessKey": "s", "SessionToken": "t"}

    creds = iam.RoleCredentials(mint, clock=clock)
    first = creds.get()
    assert first["Code"] == "Success" and first["Type"] == "AWS-HMAC"
    assert set(first) == {"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert first["Expiration"] == iam.imds_time(clock.now + timedelta(hours=1))
    assert first["LastUpdated"] == iam.imds_time(clock.now)
    clock.now += timedelta(minutes=44)
    assert creds.get() == first  # the same until 15 minutes before expiry
    clock.now += timedelta(minutes=1, seconds=1)
    second = creds.get()
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert second["Expiration"] == iam.imds_time(clock.now + timedelta(hours=1))
    assert len(minted) == 2


class FakeClock:
    def __init__(self):
        self.now = iam.utcnow().replace(microsecond=0)

    def __call__(self):
        return self.now


# ------------------------------------------------------------------ instance profiles at launch
def test_launch_with_a_missing_profile_is_invalid_parameter_value(front, world):
    ec2 = client(front, "ec2")
    err = error_of(ec2.run_instances, IamInstanceProfile={"Name": "no-such-profile"}, **world["run"])
    assert (err["Code"], err["status"]) == ("InvalidParameterValue", 400)
    assert err["Message"] == (
        "Value (no-such-profile) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
    )
    arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/no-such-profile"
    err = error_of(ec2.run_instances, IamInstanceProfile={"Arn": arn}, **world["run"])
    assert err["Code"] == "InvalidParameterValue"
    assert err["Message"].startswith(f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid.")


def test_describe_instances_shows_the_profile(front, world):
    profile = world["profile"]
    shown = describe(front, world["with_role"]["InstanceId"])["IamInstanceProfile"]
    assert shown == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert world["with_role"]["IamInstanceProfile"] == shown  # RunInstances' own answer too
    assert "IamInstanceProfile" not in describe(front, world["without"]["InstanceId"])
    by_arn = client(front, "ec2").run_instances(IamInstanceProfile={"Arn": profile["Arn"]}, **world["run"])
    assert by_arn["Instances"][0]["IamInstanceProfile"]["Arn"] == profile["Arn"]


def test_launch_with_a_profile_needs_pass_role(front, world):
    launch = [{"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:DescribeInstances"], "Resource": "*"}]
    without = user_with(front, "no-pass-role", launch)
    err = error_of(client(front, "ec2", without).run_instances, IamInstanceProfile={"Name": PROFILE}, **world["run"])
    assert (err["Code"], err["status"]) == ("UnauthorizedOperation", 403)
    assert "\n" not in err["Message"]
    assert f"is not authorized to perform: iam:PassRole on resource: {ROLE_ARN} " in err["Message"]
    client(front, "ec2", without).run_instances(**world["run"])  # without a profile it needs no PassRole
    other_role = [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/other"}]
    wrong = user_with(front, "pass-other-role", launch + other_role)
    err = error_of(client(front, "ec2", wrong).run_instances, IamInstanceProfile={"Name": PROFILE}, **world["run"])
    assert err["Code"] == "UnauthorizedOperation"
    this_role = [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/directory-*"}]
    ok = user_with(front, "pass-this-role", launch + this_role)
    run = client(front, "ec2", ok).run_instances(IamInstanceProfile={"Name": PROFILE}, **world["run"])
    assert run["Instances"][0]["IamInstanceProfile"]["Arn"] == world["profile"]["Arn"]


def test_pass_role_limited_to_another_service_cannot_launch(front, world):
    """A launch passes the role to EC2: iam:PassedToService is ec2.amazonaws.com, so PassRole granted only for
    another service is refused and PassRole granted for EC2 is enough."""
    launch = [{"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:DescribeInstances"], "Resource": "*"}]

    def pass_to(service: str) -> list[dict]:
        return [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE_ARN,
                 "Condition": {"StringEquals": {"iam:PassedToService": service}}}]  # fmt: skip

    lambda_only = user_with(front, "pass-to-lambda", launch + pass_to("lambda.amazonaws.com"))
    err = error_of(
        client(front, "ec2", lambda_only).run_instances, IamInstanceProfile={"Name": PROFILE}, **world["run"]
    )
    assert err["Code"] == "UnauthorizedOperation"
    assert f"iam:PassRole on resource: {ROLE_ARN} " in err["Message"]
    ec2_only = user_with(front, "pass-to-ec2", launch + pass_to("ec2.amazonaws.com"))
    run = client(front, "ec2", ec2_only).run_instances(IamInstanceProfile={"Name": PROFILE}, **world["run"])
    assert run["Instances"][0]["IamInstanceProfile"]["Arn"] == world["profile"]["Arn"]


def test_the_collection_policy_passes_the_flow_role_to_ec2_only():
    """docs/iam-policy.json: PassRole on the flow's role for a launch (EC2) and for AddRoleToInstanceProfile (no
    service named), never to another service, and never another role."""
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    role = f"arn:aws:iam::{ACCOUNT}:role/demo-webserver"

    def decision(resource: str, **context) -> str:
        return iam.evaluate([policy], "iam:PassRole", resource, {k: [v] for k, v in context.items()})

    assert decision(role, **{"iam:PassedToService": "ec2.amazonaws.com"}) == iam.ALLOW
    assert decision(role) == iam.ALLOW
    assert decision(role, **{"iam:PassedToService": "lambda.amazonaws.com"}) == iam.IMPLICIT_DENY
    assert decision(ROLE_ARN, **{"iam:PassedToService": "ec2.amazonaws.com"}) == iam.IMPLICIT_DENY


# ------------------------------------------------------------------ the role's credentials and its policy
def test_metadata_iam_tree(front, world):
    core = front[0]
    meta = core.instance_iam(describe(front, world["with_role"]["InstanceId"]))
    info = json.loads(meta["iam/info"])
    assert info["Code"] == "Success"
    assert (info["InstanceProfileArn"], info["InstanceProfileId"]) == (
        world["profile"]["Arn"],
        world["profile"]["InstanceProfileId"],
    )
    assert set(meta) == {"iam/info", f"iam/security-credentials/{ROLE}"}
    assert core.instance_iam(describe(front, world["without"]["InstanceId"])) == {}
    from sandbox import imds

    assert imds.lookup(meta, "/latest/meta-data/iam/security-credentials/") == ROLE  # no newline: clients append it
    doc = json.loads(imds.lookup(meta, f"/latest/meta-data/iam/security-credentials/{ROLE}"))
    assert doc["AccessKeyId"].startswith("ASIA") and doc["Token"]
    assert imds.lookup({}, "/latest/meta-data/iam/security-credentials/") is None  # 404 without a profile


@pytest.mark.parametrize("guest", [False, True], ids=["machine", "guest-listener"])
def test_role_reaches_its_table_and_bucket_only(front, world, guest):
    key = role_key(front, world)
    ddb, s3 = client(front, "dynamodb", key, guest), client(front, "s3", key, guest)
    sts = client(front, "sts", key, guest)
    assert sts.get_caller_identity()["Arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{world['with_role']['InstanceId']}"
    )
    assert ddb.get_item(TableName=TABLE, Key={"id": {"S": "1"}})["Item"]["email"]["S"] == "ada@example.com"
    ddb.put_item(TableName=TABLE, Item={"id": {"S": "2"}, "email": {"S": "grace@example.com"}})
    found = ddb.query(TableName=TABLE, IndexName="by-email", KeyConditionExpression="email = :e",
                      ExpressionAttributeValues={":e": {"S": "grace@example.com"}})  # fmt: skip
    assert [i["id"]["S"] for i in found["Items"]] == ["2"]
    s3.put_object(Bucket=BUCKET, Key="photos/é 2.jpg", Body=b"\xff\xd8 two")  # a key that needs encoding
    assert s3.get_object(Bucket=BUCKET, Key="photos/é 2.jpg")["Body"].read() == b"\xff\xd8 two"
    assert "photos/1.jpg" in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]

    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{world['with_role']['InstanceId']}"
    other_table = TABLE_ARN.replace(TABLE, OTHER_TABLE)
    err = error_of(ddb.get_item, TableName=OTHER_TABLE, Key={"id": {"S": "1"}})
    assert (err["Code"], err["status"]) == ("AccessDeniedException", 400)
    assert err["Message"] == (
        f"User: {role} is not authorized to perform: dynamodb:GetItem on resource: {other_table} "
        "because no identity-based policy allows the dynamodb:GetItem action"
    )
    assert error_of(ddb.delete_table, TableName=TABLE)["Code"] == "AccessDeniedException"
    err = error_of(s3.get_object, Bucket=OTHER_BUCKET, Key="photos/1.jpg")
    assert (err["Code"], err["status"]) == ("AccessDenied", 403)
    assert f"perform: s3:GetObject on resource: arn:aws:s3:::{OTHER_BUCKET}/photos/1.jpg " in err["Message"]
    assert error_of(s3.list_objects_v2, Bucket=OTHER_BUCKET)["Code"] == "AccessDenied"
    assert error_of(s3.head_object, Bucket=OTHER_BUCKET, Key="photos/1.jpg")["Code"] == "403"  # HEAD: no body
    err = error_of(s3.put_object, Bucket=BUCKET, Key="readonly/x", Body=b"x")
    assert "with an explicit deny in an identity-based policy" in err["Message"]
    assert error_of(client(front, "iam", key, guest).list_users)["Code"] == "AccessDenied"


def test_ddb_error_body_is_json_and_s3_error_body_is_xml(front, world):
    """The raw shapes: DynamoDB's JSON __type, S3's <Error> document."""
    key = role_key(front, world)
    ddb = client(front, "dynamodb", key)
    seen = {}
    ddb.meta.events.register("after-call.dynamodb.GetItem", lambda http_response, **kw: seen.update(r=http_response))
    error_of(ddb.get_item, TableName=OTHER_TABLE, Key={"id": {"S": "1"}})
    assert seen["r"].headers["Content-Type"] == "application/x-amz-json-1.0"
    assert json.loads(seen["r"].content)["__type"].endswith("#AccessDeniedException")
    s3 = client(front, "s3", key)
    s3.meta.events.register("after-call.s3.GetObject", lambda http_response, **kw: seen.update(r=http_response))
    error_of(s3.get_object, Bucket=OTHER_BUCKET, Key="photos/1.jpg")
    assert seen["r"].content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>')


def test_expired_credentials_are_refused_and_imds_gives_new_ones(front, world):
    core = front[0]
    old = role_key(front, world)
    real = core.gate.clock
    later = real() + timedelta(minutes=61)
    core.gate.clock = lambda: later
    try:
        err = error_of(client(front, "dynamodb", old).get_item, TableName=TABLE, Key={"id": {"S": "1"}})
        assert err["Code"] == "ExpiredTokenException"
        assert error_of(client(front, "s3", old).get_object, Bucket=BUCKET, Key="photos/1.jpg")["Code"] == (
            "ExpiredToken"
        )
        new = role_key(front, world)  # the metadata service has renewed them
        assert new[0] != old[0]
        assert client(front, "dynamodb", new).get_item(TableName=TABLE, Key={"id": {"S": "1"}})["Item"]
    finally:
        core.gate.clock = real


def test_assume_role_follows_the_trust_policy(front, world):
    anyone = user_with(front, "assumer", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    err = error_of(client(front, "sts", anyone).assume_role, RoleArn=ROLE_ARN, RoleSessionName="session")
    assert err["Code"] == "AccessDenied"  # only EC2 (the sandbox, for the instance) may assume the app's role
    assert f"sts:AssumeRole on resource: {ROLE_ARN}" in err["Message"]
    trusting = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}  # fmt: skip
    client(front, "iam").create_role(RoleName="helper", AssumeRolePolicyDocument=json.dumps(trusting))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/helper"
    assert client(front, "sts", anyone).assume_role(RoleArn=role_arn, RoleSessionName="session")["Credentials"]
    narrow = user_with(front, "narrow-assumer", [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                   "Resource": f"arn:aws:iam::{ACCOUNT}:role/other"}])  # fmt: skip
    assert error_of(client(front, "sts", narrow).assume_role, RoleArn=role_arn, RoleSessionName="session")["Code"] == (
        "AccessDenied"
    )


def test_guest_listener_has_no_control_api(front):
    _core, _url, guest_url, _keys = front
    for path in ("/_sandbox/status", "/moto-api/reset"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(guest_url + path, data=b"" if "reset" in path else None, timeout=10)
        assert err.value.code == 404


def test_iam_requests_name_the_role_or_profile():
    iam_resource = services_iam.iam_resource
    assert iam_resource({"RoleName": ROLE}) == ROLE_ARN
    assert iam_resource({"RoleName": ROLE, "Path": "/app/"}) == f"arn:aws:iam::{ACCOUNT}:role/app/{ROLE}"
    profile = {"InstanceProfileName": PROFILE, "RoleName": ROLE}  # AddRoleToInstanceProfile acts on the profile
    assert iam_resource(profile) == f"arn:aws:iam::{ACCOUNT}:instance-profile/{PROFILE}"
    assert iam_resource({}) == "*"


def test_resource_actions_name_each_resource_in_order():
    params = {f"InstanceId.{n}": f"i-{n:017x}" for n in (10, 2, 1)}
    in_order = ["i-00000000000000001", "i-00000000000000002", "i-0000000000000000a"]
    assert ec2.resource_ids(params, "InstanceId") == in_order
    single = {"InstanceId": "i-0abc"}  # ModifyInstanceAttribute, CreateImage
    assert ec2.resource_ids(single, "InstanceId") == ["i-0abc"]
    service = ec2.Ec2(core=None, moto=None)

    def requested(action: str, params: dict, region: str = REGION) -> list[tuple[str, str]]:
        scope = f"Credential=AKIAEXAMPLE/20261207/{region}/ec2/aws4_request"
        environ = {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 {scope}, x", "REQUEST_METHOD": "POST"}
        return service.requested(parse(environ, urlencode({"Action": action, **params}).encode()))

    arns = [resource for _name, resource in requested("StopInstances", params, "eu-west-1")]
    assert arns == [f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{i}" for i in in_order]
    assert requested("DescribeInstances", params) == [("ec2:DescribeInstances", "*")]
    image = requested("DeregisterImage", {"ImageId": "ami-1"})
    assert image == [("ec2:DeregisterImage", f"arn:aws:ec2:{REGION}::image/ami-1")]  # images: no account in the ARN
    group = requested("DeleteSecurityGroup", {"GroupId": "sg-1"})
    assert group == [("ec2:DeleteSecurityGroup", f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-1")]
    by_name = requested("DeleteSecurityGroup", {"GroupName": "web"})
    assert by_name == [("ec2:DeleteSecurityGroup", "*")]


def test_adding_a_role_to_a_profile_needs_pass_role(front, world):
    profile_arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/second-*"
    manage = [
        {"Effect": "Allow", "Action": ["iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile"],
         "Resource": profile_arn},
    ]  # fmt: skip
    without = client(front, "iam", user_with(front, "profiles-only", manage))
    without.create_instance_profile(InstanceProfileName="second-a")
    err = error_of(without.add_role_to_instance_profile, InstanceProfileName="second-a", RoleName=ROLE)
    assert err["Code"] == "AccessDenied"
    assert f"iam:PassRole on resource: {ROLE_ARN} " in err["Message"]
    assert error_of(without.create_instance_profile, InstanceProfileName="other-profile")["Code"] == "AccessDenied"
    pass_role = [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE_ARN}]
    allowed = client(front, "iam", user_with(front, "profiles-and-pass", manage + pass_role))
    allowed.create_instance_profile(InstanceProfileName="second-b")
    allowed.add_role_to_instance_profile(InstanceProfileName="second-b", RoleName=ROLE)


def test_terminated_instance_credentials_are_forgotten(front, world):
    core = front[0]
    ec2 = client(front, "ec2")
    iid = ec2.run_instances(IamInstanceProfile={"Name": PROFILE}, **world["run"])["Instances"][0]["InstanceId"]
    key = role_key(front, world, iid)
    assert (iid, ROLE_ARN) in core.role_creds
    ec2.terminate_instances(InstanceIds=[iid])
    assert (iid, ROLE_ARN) not in core.role_creds
    # keys already handed out stay valid until they expire, as on AWS
    assert client(front, "dynamodb", key).get_item(TableName=TABLE, Key={"id": {"S": "1"}})["Item"]


def test_dynamodb_writes_at_once_are_not_undone_by_a_failed_transaction(front):
    # moto undoes a failed TransactWriteItems by restoring the tables as they were when it began; answered
    # concurrently, that would also undo the writes of other clients meanwhile (clones adding employees at once).
    ddb = client(front, "dynamodb")
    ddb.create_table(
        TableName="at-once",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # A table of some size, so that moto's copy of it (taken by every transaction) takes a while.
    for start in range(0, 500, 25):
        ddb.batch_write_item(
            RequestItems={
                "at-once": [{"PutRequest": {"Item": {"pk": {"S": f"old-{n}"}}}} for n in range(start, start + 25)]
            }
        )
    errors = []

    def failing_transactions():
        own = client(front, "dynamodb")
        for n in range(25):
            try:
                own.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": "at-once", "Item": {"pk": {"S": f"never-{n}"}}}},
                        {"ConditionCheck": {"TableName": "at-once", "Key": {"pk": {"S": "missing"}},
                                            "ConditionExpression": "attribute_exists(pk)"}},
                    ]
                )  # fmt: skip
                errors.append("a transaction whose condition fails succeeded")
            except ClientError as err:
                if err.response["Error"]["Code"] != "TransactionCanceledException":
                    errors.append(err.response["Error"]["Code"])

    def puts(worker):
        own = client(front, "dynamodb")
        for n in range(25):
            own.put_item(TableName="at-once", Item={"pk": {"S": f"w{worker}-{n}"}})

    threads = [threading.Thread(target=failing_transactions) for _ in range(3)]
    threads += [threading.Thread(target=puts, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    items = ddb.scan(TableName="at-once", ConsistentRead=True)["Items"]
    new = sorted(i["pk"]["S"] for i in items if not i["pk"]["S"].startswith("old-"))
    assert new == sorted(f"w{w}-{n}" for w in range(3) for n in range(25))
    assert len(items) == 500 + 75
