"""Two ec2_launch runs for one name at the same moment, as two AWX jobs or two operators would start them, on the
sandbox's strict API front (consistency windows, IAM as the least-privilege user): the deterministic ClientToken
makes both runs get the same reservation, so the group has ``count`` instances, not twice as many, and both runs
report the same instances. The key pair and the security group, made by whichever run comes first, are shared."""

from __future__ import annotations

import json
import subprocess

from conftest import BIN
from test_connection import front_env, strict_front, strict_tests  # noqa: F401 # pylint: disable=unused-import

NAME = "concurrent-web"


def test_two_runs_at_once_launch_one_group(aws_env, strict_front, tmp_path):  # noqa: F811
    env = front_env(aws_env, strict_front, strict_front[1][strict_tests.iam.USER])
    args = {
        "name": NAME,
        "count": 2,
        "image_id": strict_tests.catalogue_image(strict_tests.client(strict_front)),
        "key_name": NAME,
        "public_key": strict_tests.public_key(tmp_path),
        "firewall": [{"ports": 80, "cidr": "10.0.0.0/8"}],
    }
    cmd = [str(BIN / "ansible"), "localhost", "-o", "-m", "bakery.ec2.ec2_launch", "-a", json.dumps(args)]
    runs = [
        subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _job in ("first", "second")
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        line = next((ln for ln in out.splitlines() if ln.startswith("localhost | ")), "")
        assert run.returncode == 0 and " => " in line, out[-3000:] + err[-2000:]
        results.append(json.loads(line.split(" => ", 1)[1]))
    first, second = (sorted(r["instance_ids"]) for r in results)
    assert len(first) == 2 and first == second, results
    ec2 = strict_tests.client(strict_front)
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [NAME]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    assert sorted(i["InstanceId"] for r in reservations for i in r["Instances"]) == first
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [NAME]}])["SecurityGroups"]
    assert len(groups) == 1
    assert [k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=[NAME])["KeyPairs"]] == [NAME]
