"""Instance roles on real hosts (run as root, under the sandbox lock: make test-sandbox).

A host launched with an instance profile gets its role's credentials from IMDSv2 and, with them, reaches its
table and bucket and nothing else; a host without a profile has no credentials; guests reach the sandbox's API
at BAKERY_SANDBOX_GUEST_ENDPOINT and at no other address or port of the machine.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import SSH_OPTS, base_ami, eventually, ssh_group, wait_ssh, wait_state

from sandbox import config

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

# Runs inside a host with the host's python3 (no boto3 there): IMDSv2 as an SDK uses it, printed as JSON.
IMDS_PROBE = """
import json, urllib.error, urllib.request
BASE = "http://169.254.169.254/latest"
def call(path, method="GET", headers=None):
    req = urllib.request.Request(BASE + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return [resp.status, resp.read().decode()]
    except urllib.error.HTTPError as err:
        return [err.code, ""]
token = call("/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})[1]
auth = {"X-aws-ec2-metadata-token": token}
out = {"without_token": call("/meta-data/iam/security-credentials/")[0]}
out["listing"] = call("/meta-data/", headers=auth)
out["roles"] = call("/meta-data/iam/security-credentials/", headers=auth)
out["info"] = call("/meta-data/iam/info", headers=auth)
if out["roles"][0] == 200:
    out["credentials"] = call("/meta-data/iam/security-credentials/" + out["roles"][1], headers=auth)
print(json.dumps(out))
"""

# Which of the machine's addresses and ports a guest reaches: the guest endpoint answers (an unsigned request
# is refused by the API, which shows the API answered), the control API is not there, nothing else connects.
REACH_PROBE = """
import json, socket, sys, urllib.error, urllib.request
guest, gateway, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return [resp.status, resp.read().decode()]
    except urllib.error.HTTPError as err:
        return [err.code, err.read().decode()]
def connects(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False
print(json.dumps({
    "api": get(guest + "/"),
    "control": get(guest + "/_sandbox/status")[0],
    "gateway_api_port": connects(gateway, port),
    "metadata_ssh_port": connects("169.254.169.254", 22),
}))
"""

# The app's own path, by hand (the base image has no boto3): the role's credentials from IMDSv2, then SigV4-signed
# calls to the guest endpoint; the signature names that host (169.254.169.254:PORT), not the machine's 127.0.0.1.
SIGNED_PROBE = """
import datetime, hashlib, hmac, json, sys, urllib.error, urllib.request
endpoint, table, other = sys.argv[1], sys.argv[2], sys.argv[3]
def imds(path, method="GET", headers=None):
    req = urllib.request.Request("http://169.254.169.254/latest" + path, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()
auth = {"X-aws-ec2-metadata-token": imds("/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})}
role = imds("/meta-data/iam/security-credentials/", headers=auth)
creds = json.loads(imds("/meta-data/iam/security-credentials/" + role, headers=auth))
def mac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
def call(service, body, headers):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = dict(headers, host=endpoint.split("://")[1], **{"x-amz-date": stamp,
                   "x-amz-security-token": creds["Token"]})
    names = sorted(headers)
    canonical = "\\n".join(["POST", "/", "", "".join(f"{n}:{headers[n]}\\n" for n in names), ";".join(names),
                            hashlib.sha256(body.encode()).hexdigest()])
    scope = f"{day}/us-east-1/{service}/aws4_request"
    key = mac(mac(mac(mac(("AWS4" + creds["SecretAccessKey"]).encode(), day), "us-east-1"), service), "aws4_request")
    to_sign = "\\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    req = urllib.request.Request(endpoint + "/", data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return [resp.status, resp.read().decode()]
    except urllib.error.HTTPError as err:
        return [err.code, err.read().decode()]
form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
def get_item(name):
    body = json.dumps({"TableName": name, "Key": {"id": {"S": "1"}}})
    return call("dynamodb", body, {"content-type": "application/x-amz-json-1.0",
                                   "x-amz-target": "DynamoDB_20120810.GetItem"})
print(json.dumps({
    "identity": call("sts", "Action=GetCallerIdentity&Version=2011-06-15", form),
    "table": get_item(table),
    "other": get_item(other),
}))
"""


def in_host(key, ip: str, script: str, *args: str) -> dict:
    res = subprocess.run(
        ["ssh", *SSH_OPTS, "-i", str(key), f"admin@{ip}", "python3", "-", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"ssh {ip}: rc={res.returncode} {res.stderr}"
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def hosts(sandbox, ec2, tmp_path_factory):
    """Two Debian 12 hosts (IMDSv2 required): one launched with the app's instance profile, one without."""
    tag = uuid.uuid4().hex[:8]
    names = {
        "table": f"directory-{tag}",
        "other_table": f"other-{tag}",
        "bucket": f"photos-{tag}",
        "other_bucket": f"other-photos-{tag}",
        "role": f"web-{tag}",
    }
    iam, ddb, s3 = sandbox.client(service="iam"), sandbox.client(service="dynamodb"), sandbox.client(service="s3")
    table_arn = f"arn:aws:dynamodb:us-east-1:{config.ACCOUNT_ID}:table/{names['table']}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table_arn},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{names['bucket']}/*"},
        ],
    }
    iam.create_role(RoleName=names["role"], AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName=names["role"], PolicyName="app", PolicyDocument=json.dumps(policy))
    iam.create_instance_profile(InstanceProfileName=names["role"])
    iam.add_role_to_instance_profile(InstanceProfileName=names["role"], RoleName=names["role"])
    for table in (names["table"], names["other_table"]):
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName=table, Item={"id": {"S": "1"}, "name": {"S": table}})
    for bucket in (names["bucket"], names["other_bucket"]):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="photos/1.jpg", Body=bucket.encode())
    key = tmp_path_factory.mktemp("role") / "id"
    key.write_text(ec2.create_key_pair(KeyName=f"role-{tag}")["KeyMaterial"])
    key.chmod(0o600)
    group = ssh_group(ec2, "role")
    run = {
        "ImageId": base_ami(ec2, "12")["ImageId"],
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceType": "t3.micro",
        "KeyName": f"role-{tag}",
        "SecurityGroupIds": [group],
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
    }
    with_role = eventually(ec2.run_instances, IamInstanceProfile={"Name": names["role"]}, **run)["Instances"][0]
    without = eventually(ec2.run_instances, **run)["Instances"][0]
    ids = [with_role["InstanceId"], without["InstanceId"]]
    insts = [wait_state(ec2, iid, "running") for iid in ids]
    for inst in insts:
        wait_ssh(key, inst["PrivateIpAddress"])
    yield {"key": key, "with_role": insts[0], "without": insts[1], **names}
    if sandbox.pid():
        with contextlib.suppress(ClientError):
            ec2.terminate_instances(InstanceIds=ids)


def role_clients(sandbox, creds: dict):
    def make(service):
        import boto3

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=sandbox.endpoint,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["Token"],
        )

    return make("dynamodb"), make("s3")


def test_host_with_a_profile_gets_its_role_credentials_from_imdsv2(sandbox, hosts):
    inst = hosts["with_role"]
    seen = in_host(hosts["key"], inst["PrivateIpAddress"], IMDS_PROBE)
    assert seen["without_token"] == 401  # HttpTokens=required, as for the rest of the metadata
    assert "iam/" in seen["listing"][1].split("\n")
    assert seen["roles"] == [200, hosts["role"]]
    info = json.loads(seen["info"][1])
    assert info["InstanceProfileArn"].endswith(f":instance-profile/{hosts['role']}")
    status, text = seen["credentials"]
    creds = json.loads(text)
    assert status == 200 and creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Token"] and creds["Expiration"].endswith("Z")

    ddb, s3 = role_clients(sandbox, creds)
    item = ddb.get_item(TableName=hosts["table"], Key={"id": {"S": "1"}})["Item"]
    assert item["name"]["S"] == hosts["table"]
    assert s3.get_object(Bucket=hosts["bucket"], Key="photos/1.jpg")["Body"].read() == hosts["bucket"].encode()
    with pytest.raises(ClientError) as err:
        ddb.get_item(TableName=hosts["other_table"], Key={"id": {"S": "1"}})
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"table/{hosts['other_table']}" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=hosts["other_bucket"], Key="photos/1.jpg")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=hosts["bucket"], Key="photos/2.jpg", Body=b"x")  # the policy allows reading only
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_host_without_a_profile_has_no_credentials(hosts):
    inst = hosts["without"]
    seen = in_host(hosts["key"], inst["PrivateIpAddress"], IMDS_PROBE)
    assert seen["roles"][0] == 404
    assert seen["info"][0] == 404
    assert "iam/" not in seen["listing"][1].split("\n")


def test_guests_reach_the_api_at_the_guest_endpoint_only(sandbox, hosts):
    inst = hosts["with_role"]
    assert sandbox.env()["BAKERY_SANDBOX_GUEST_ENDPOINT"] == sandbox.guest_endpoint
    gateway = inst["PrivateIpAddress"].rsplit(".", 1)[0] + ".1"  # the subnet's gateway, on the bridge
    seen = in_host(hosts["key"], inst["PrivateIpAddress"], REACH_PROBE, sandbox.guest_endpoint, gateway,
                   str(sandbox.port))  # fmt: skip
    status, body = seen["api"]
    assert status == 401 and "MissingAuthenticationToken" in body  # the API answered (and wants a signature)
    assert seen["control"] == 404
    assert seen["gateway_api_port"] is False
    assert seen["metadata_ssh_port"] is False


def test_host_calls_its_table_with_its_role_at_the_guest_endpoint(sandbox, hosts):
    inst = hosts["with_role"]
    seen = in_host(hosts["key"], inst["PrivateIpAddress"], SIGNED_PROBE, sandbox.guest_endpoint, hosts["table"],
                   hosts["other_table"])  # fmt: skip
    status, body = seen["identity"]
    assert status == 200, body
    assert f"assumed-role/{hosts['role']}/{inst['InstanceId']}" in body
    status, body = seen["table"]
    assert status == 200, body
    assert json.loads(body)["Item"]["name"]["S"] == hosts["table"]
    status, body = seen["other"]
    assert status == 400
    assert json.loads(body)["__type"].endswith("#AccessDeniedException")
    assert f"dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:{config.ACCOUNT_ID}:table/" in body
