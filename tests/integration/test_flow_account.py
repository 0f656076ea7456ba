"""The flow on an account of its own, on the sandbox's API front as the least-privilege user: names AWS would refuse
fail in preflight, before anything is created; the bucket's name carries the account's ID, and another account's
bucket of that name stops launch.yml in one line and is left alone by teardown.yml. Also the sandbox's buckets of
other accounts themselves (sandbox/s3.py)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from conftest import BIN, REPO, SELF
from test_connection import front_env, strict_front, strict_tests  # noqa: F401 # pylint: disable=unused-import

OTHER_ACCOUNT = "210987654321"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/flow-account"


def foreign_bucket(front, name: str) -> None:
    url, _keys = front
    request = urllib.request.Request(
        f"{url}/_sandbox/foreign-buckets",
        data=json.dumps({"bucket": name, "account": OTHER_ACCOUNT}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["account"] == OTHER_ACCOUNT


def run_flow(aws_env, front, tmp_path, playbook: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(front_env(aws_env, front, front[1][strict_tests.iam.USER]), HOME=str(tmp_path))
    # As on an account of one's own, where the user gives the load balancer's certificate (no sandbox CA here).
    certificate = json.dumps({"flow_certificate_arn": CERTIFICATE})
    cmd = [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / playbook), "-e", certificate, *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)


def fatal_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("fatal: ")]


def store_of(front) -> dict:
    """What the administrator sees of tables, buckets, roles and profiles."""
    return {
        "tables": strict_tests.client(front, service="dynamodb").list_tables()["TableNames"],
        "buckets": [b["Name"] for b in strict_tests.client(front, service="s3").list_buckets()["Buckets"]],
        "roles": [r["RoleName"] for r in strict_tests.client(front, service="iam").list_roles()["Roles"]],
        "groups": [g["GroupName"] for g in strict_tests.client(front).describe_security_groups()["SecurityGroups"]],
    }


def test_a_29_character_flow_name_fails_in_preflight(aws_env, strict_front, tmp_path):  # noqa: F811
    before = store_of(strict_front)
    name = "a" * 29
    proc = run_flow(aws_env, strict_front, tmp_path, "launch.yml", "-e", f"flow_name={name}")
    assert proc.returncode == 2, proc.stdout[-3000:]
    [fatal] = fatal_lines(proc)
    assert (
        f'"msg": "flow_target_group_name: \'{name}-web\' is not a valid name (at most 32 letters, digits and '
        'hyphens, no hyphen at either end)"' in fatal
    ), fatal
    assert "Find the base image" not in proc.stdout
    assert store_of(strict_front) == before


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"flow_lb_name": "internal-web"}, "flow_lb_name: 'internal-web' is not a valid name (at most 32 letters"),
        ({"flow_lb_name": "web-"}, "flow_lb_name: 'web-' is not a valid name"),
        ({"flow_bucket_name": "photos..of.us"}, "flow_bucket_name: 'photos..of.us' is not a valid name"),
        ({"flow_bucket_name": "10.0.0.1"}, "flow_bucket_name: '10.0.0.1' is not a valid name"),
        # The instance profile has the role's name: the role's rule (64 characters; a profile's is 128) covers both.
        ({"flow_role_name": "r" * 65}, f"flow_role_name: '{'r' * 65}' is not a valid name (1-64"),
        ({"flow_table_name": "ab"}, "flow_table_name: 'ab' is not a valid name (3-255 letters, digits, _ . -)"),
        ({"flow_table_name": "staff employees"}, "flow_table_name: 'staff employees' is not a valid name (3-255"),
        ({"flow_table_name": "t" * 256}, f"flow_table_name: '{'t' * 256}' is not a valid name (3-255"),
        ({"flow_connect_address": "both"}, "flow_connect_address: 'both' is not private or public"),
        ({"flow_fleet": "ASG"}, "flow_fleet: 'ASG' is not what keeps the clones (instances or asg)"),
        ({"flow_asg_health_grace": "1m", "flow_fleet": "asg"}, "flow_asg_health_grace: '1m' is not a whole number"),
        ({"flow_launch_template_name": "web v2", "flow_fleet": "asg"}, "flow_launch_template_name: 'web v2' is not"),
        ({"flow_asg_name": "web:blue", "flow_fleet": "asg"}, "flow_asg_name: 'web:blue' is not a valid name"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_names_aws_refuses_fail_in_preflight(aws_env, strict_front, tmp_path, extra, line):  # noqa: F811
    proc = run_flow(aws_env, strict_front, tmp_path, "launch.yml", "-e", json.dumps(dict(extra, flow_name="names")))
    [fatal] = fatal_lines(proc)
    assert f'"msg": "{line}' in fatal, fatal
    assert "Find the base image" not in proc.stdout


def test_another_accounts_bucket_stops_launch_and_is_left_alone_by_teardown(aws_env, strict_front, tmp_path):  # noqa: F811
    taken = "taken-photos"
    foreign_bucket(strict_front, taken)
    before = store_of(strict_front)
    proc = run_flow(aws_env, strict_front, tmp_path, "launch.yml", "-e", "flow_name=squatted", "-e",
                    f"flow_bucket_name={taken}")  # fmt: skip
    [fatal] = fatal_lines(proc)
    assert f'"msg": "S3 bucket {taken} belongs to another account: set flow_bucket_name"' in fatal, fatal
    assert "Find the base image" not in proc.stdout
    assert store_of(strict_front) == before  # no table, bucket, role or security group was made
    down = run_flow(aws_env, strict_front, tmp_path, "teardown.yml", "-e", "flow_name=squatted", "-e",
                    f"flow_bucket_name={taken}")  # fmt: skip
    assert down.returncode == 0, down.stdout[-3000:]
    assert f"S3 bucket {taken} belongs to another account: not deleted (set flow_bucket_name)" in down.stdout
    assert strict_tests.code_of(strict_tests.client(strict_front, service="s3").head_bucket, Bucket=taken)[0] == "403"


def test_another_accounts_bucket_refuses_this_account(strict_front):  # noqa: F811
    name = "elsewhere-photos"
    foreign_bucket(strict_front, name)
    s3 = strict_tests.client(strict_front, service="s3")  # the administrator: every action allowed by IAM
    assert strict_tests.code_of(s3.head_bucket, Bucket=name)[0] == "403"
    assert strict_tests.code_of(s3.list_objects_v2, Bucket=name) == ("AccessDenied", "Access Denied")
    assert strict_tests.code_of(s3.put_object, Bucket=name, Key="x", Body=b"x")[0] == "AccessDenied"
    assert strict_tests.code_of(s3.delete_bucket, Bucket=name)[0] == "AccessDenied"
    assert strict_tests.code_of(s3.create_bucket, Bucket=name)[0] == "BucketAlreadyExists"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # Only the expected owner's HeadBucket would succeed; this account's is refused whatever it expects.
    assert strict_tests.code_of(s3.head_bucket, Bucket=name, ExpectedBucketOwner=SELF)[0] == "403"
    # A client cannot act as the other account with moto's own header (added after signing): the sandbox strips it.
    s3.meta.events.register(
        "before-send.s3.*", lambda request, **kw: request.headers.__setitem__("x-moto-account-id", OTHER_ACCOUNT)
    )
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bad_foreign_bucket_requests_are_one_line(strict_front):  # noqa: F811
    url, _keys = strict_front
    for spec, named in (({"bucket": "Upper", "account": OTHER_ACCOUNT}, "'Upper'"),
                        ({"bucket": "fine-name", "account": SELF}, f"'{SELF}'")):  # fmt: skip
        request = urllib.request.Request(
            f"{url}/_sandbox/foreign-buckets", data=json.dumps(spec).encode(), method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 400
        assert named in json.loads(err.value.read())["error"]


@pytest.mark.parametrize("partition", ["aws-cn", "aws-us-gov"])
def test_the_policy_for_another_partition_is_the_documented_substitution(tmp_path, partition):
    """docs/iam-policy.md's command for the partition, run on docs/iam-policy.json: every ARN is the partition's."""
    doc = (REPO / "docs" / "iam-policy.md").read_text()
    [command] = [line for line in doc.splitlines() if line.startswith("sed ") and f"arn:{partition}:" in line]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "iam-policy.json").write_text((REPO / "docs" / "iam-policy.json").read_text())
    subprocess.run(command, shell=True, cwd=tmp_path, check=True, timeout=30)
    policy = json.loads((tmp_path / command.rsplit("> ", 1)[1]).read_text())
    resources = [r for s in policy["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                          else s["Resource"])]  # fmt: skip
    arns = [r for r in resources if r != "*"]
    assert arns
    assert all(r.startswith(f"arn:{partition}:") for r in arns), arns
    assert len(policy["Statement"]) == len(json.loads((REPO / "docs" / "iam-policy.json").read_text())["Statement"])
