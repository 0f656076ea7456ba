"""bakery.ec2.instances against moto: instances in two regions, read with ansible-inventory and a playbook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

BIN = Path(sys.executable).parent

IMAGE = "ami-00000000000000001"


def launch(aws_env, region, count, tags, instance_type="t3.micro"):
    ec2 = boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    found = ec2.run_instances(
        ImageId=IMAGE, MinCount=count, MaxCount=count, InstanceType=instance_type, TagSpecifications=spec
    )
    return ec2, [i["InstanceId"] for i in found["Instances"]]


@pytest.fixture
def fleet(aws_env):
    """3 web + 1 db in eu-west-1, 2 web in us-east-1 (one stopped), 1 tagged Skip."""
    _ec2, web_eu = launch(aws_env, "eu-west-1", 3, {"Role": "web", "Name": "web-eu"})
    _ec2, db_eu = launch(aws_env, "eu-west-1", 1, {"Role": "db", "Name": "db-eu"}, "m6i.large")
    ec2_us, web_us = launch(aws_env, "us-east-1", 2, {"Role": "web"})
    ec2_us.stop_instances(InstanceIds=[web_us[1]])
    _ec2, skip = launch(aws_env, "us-east-1", 1, {"Role": "web", "Skip": "yes"})
    return {"web_eu": web_eu, "db_eu": db_eu, "web_us": web_us, "skip": skip}


def inventory(aws_env, tmp_path, config, *args, name="test.instances.yml"):
    path = tmp_path / name
    path.write_text(json.dumps({"plugin": "bakery.ec2.instances", **config}))
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list", *args],
        env=aws_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 or "Unable to parse" in proc.stderr:
        pytest.fail(f"ansible-inventory failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout, object_hook=plain), proc


def plain(obj):
    """ansible-inventory --list marks strings made by templating as unsafe: {"__ansible_unsafe": "..."}."""
    return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj


def hosts_of(data, group):
    return sorted(data.get(group, {}).get("hosts", []))


def test_groups_compose_and_hostvars_in_two_regions(aws_env, tmp_path, fleet):
    data, _proc = inventory(
        aws_env,
        tmp_path,
        {
            "regions": ["eu-west-1", "us-east-1"],
            "keyed_groups": [
                {"key": "ec2_tags.Role", "prefix": "role"},
                {"key": "placement.region", "prefix": "region"},
                {"key": "instance_type", "prefix": "type"},
            ],
            "groups": {"eu_web": "ec2_tags.Role == 'web' and placement.region == 'eu-west-1'"},
            "compose": {"ansible_user": "'admin'", "role_upper": "ec2_tags.Role | upper"},
        },
    )
    running_web = sorted(fleet["web_eu"] + fleet["web_us"][:1] + fleet["skip"])
    assert hosts_of(data, "role_web") == running_web
    assert hosts_of(data, "role_db") == fleet["db_eu"]
    assert hosts_of(data, "region_eu_west_1") == sorted(fleet["web_eu"] + fleet["db_eu"])
    assert hosts_of(data, "type_m6i_large") == fleet["db_eu"]
    assert hosts_of(data, "eu_web") == sorted(fleet["web_eu"])
    hostvars = data["_meta"]["hostvars"][fleet["db_eu"][0]]
    assert hostvars["ansible_user"] == "admin"
    assert hostvars["role_upper"] == "DB"
    assert hostvars["ansible_host"] == hostvars["private_ip_address"]
    assert hostvars["ec2_tags"] == {"Role": "db", "Name": "db-eu"}
    assert hostvars["placement"]["region"] == "eu-west-1"
    assert hostvars["state"]["name"] == "running"
    assert "tags" not in hostvars


def test_filters_include_exclude_and_hostnames(aws_env, tmp_path, fleet):
    data, _proc = inventory(
        aws_env,
        tmp_path,
        {
            "regions": ["eu-west-1", "us-east-1"],
            "filters": {"tag:Role": "db", "instance-state-name": "running"},
            "include_filters": [{"instance-state-name": "stopped"}],
            "exclude_filters": [{"tag:Skip": "yes"}],
            "hostnames": [{"name": "tag:Name", "prefix": "n", "separator": "-"}, "instance-id"],
        },
    )
    hosts = sorted(data["_meta"]["hostvars"])
    assert hosts == sorted(["n-db-eu", fleet["web_us"][1]])
    assert data["_meta"]["hostvars"][fleet["web_us"][1]]["state"]["name"] == "stopped"


def test_empty_regions_mean_every_region(aws_env, tmp_path, fleet):
    data, _proc = inventory(aws_env, tmp_path, {"regions": [], "filters": {"tag:Role": "db"}, "max_concurrency": 16})
    assert sorted(data["_meta"]["hostvars"]) == fleet["db_eu"]


def test_assume_role(aws_env, tmp_path, fleet):
    data, _proc = inventory(
        aws_env,
        tmp_path,
        {"regions": ["eu-west-1"], "assume_role_arn": "arn:aws:iam::123456789012:role/inventory-reader"},
    )
    assert sorted(data["_meta"]["hostvars"]) == sorted(fleet["web_eu"] + fleet["db_eu"])


def test_amazon_aws_option_names(aws_env, tmp_path, fleet):
    """iam_role_arn, allow_duplicated_hosts, hostvars_prefix and hostvars_suffix, as amazon.aws's aws_ec2 names them."""
    data, _proc = inventory(
        aws_env,
        tmp_path,
        {
            "regions": ["eu-west-1"],
            "iam_role_arn": "arn:aws:iam::123456789012:role/inventory-reader",
            "filters": {"tag:Role": "db"},
            "hostnames": ["tag:Name", "instance-id"],
            "allow_duplicated_hosts": True,
            "hostvars_prefix": "aws_",
            "hostvars_suffix": "_ec2",
            "keyed_groups": [{"key": "aws_instance_type_ec2", "prefix": "type"}],
        },
    )
    db = fleet["db_eu"][0]
    assert sorted(data["_meta"]["hostvars"]) == sorted(["db-eu", db])
    for name in ("db-eu", db):
        hostvars = data["_meta"]["hostvars"][name]
        assert hostvars["aws_instance_id_ec2"] == db
        assert hostvars["aws_ec2_tags_ec2"] == {"Role": "db", "Name": "db-eu"}
        assert "instance_id" not in hostvars
        assert hostvars["ansible_host"] == hostvars["aws_private_ip_address_ec2"]
    assert hosts_of(data, "type_m6i_large") == sorted(["db-eu", db])


def test_cache_is_used_until_flushed(aws_env, tmp_path, fleet):
    config = {
        "regions": ["eu-west-1"],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
        "cache_timeout": 3600,
    }
    first, _proc = inventory(aws_env, tmp_path, config)
    assert len(first["_meta"]["hostvars"]) == 4
    # New instances are not seen while the cache is fresh...
    launch(aws_env, "eu-west-1", 1, {"Role": "web"})
    cached, _proc = inventory(aws_env, tmp_path, config)
    assert cached["_meta"]["hostvars"] == first["_meta"]["hostvars"]
    # ... even with the endpoint gone: a cache hit makes no call at all.
    offline = dict(aws_env, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    cached, _proc = inventory(offline, tmp_path, config)
    assert sorted(cached["_meta"]["hostvars"]) == sorted(first["_meta"]["hostvars"])
    # --flush-cache fetches again.
    fresh, _proc = inventory(aws_env, tmp_path, config, "--flush-cache")
    assert len(fresh["_meta"]["hostvars"]) == 5


def test_playbook_uses_the_inventory(aws_env, tmp_path, fleet):
    path = tmp_path / "fleet.instances.yml"
    path.write_text(
        json.dumps(
            {
                "plugin": "bakery.ec2.instances",
                "regions": ["eu-west-1", "us-east-1"],
                "keyed_groups": [{"key": "ec2_tags.Role", "prefix": "role"}],
            }
        )
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
- name: Read the fleet
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Web and db hosts are grouped by role
      ansible.builtin.assert:
        that:
          - groups['role_web'] | length == 5
          - groups['role_db'] | length == 1
          - hostvars[groups['role_db'][0]].instance_type == 'm6i.large'
          - hostvars[groups['role_db'][0]].ec2_tags.Name == 'db-eu'
"""
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(path), "-i", "localhost,", str(playbook)],
        env=dict(aws_env, ANSIBLE_CONNECTION="local"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout


def test_bad_credentials_fail_in_one_line(aws_env, tmp_path):
    path = tmp_path / "bad.instances.yml"
    path.write_text(json.dumps({"plugin": "bakery.ec2.instances", "regions": ["nowhere"]}))
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        env=dict(aws_env, ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_INVENTORY_ENABLED="bakery.ec2.instances"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "region 'nowhere' is not a valid AWS region name" in proc.stderr
    assert "Traceback" not in proc.stderr
