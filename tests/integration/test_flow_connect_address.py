"""flow_connect_address against moto, whose instances have public addresses: the flow's inventory configs give
ansible_host the private address by default and the public one with -e flow_connect_address=public. Nothing is
sent to either address (ansible-inventory only reads the API)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import BIN, REPO
from test_inventory import launch, plain

CONFIGS = ("bakery.instances.yml", "bakery-clones.instances.yml")


def flow_inventory(aws_env, config: str, *extra: str) -> dict:
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(REPO / "playbooks" / "inventory" / config), "--list", *extra],
        env=aws_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout, object_hook=plain)["_meta"]["hostvars"]


@pytest.fixture
def flow_instance(aws_env):
    ec2, [instance_id] = launch(aws_env, "us-east-1", 1, {"BakeryFlow": "connect", "BakeryRole": "clone"})
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert found["PublicIpAddress"] != found["PrivateIpAddress"]
    return instance_id, found["PrivateIpAddress"], found["PublicIpAddress"]


@pytest.mark.parametrize("config", CONFIGS)
def test_ansible_host_is_the_private_address_by_default(aws_env, flow_instance, config):
    instance_id, private, _public = flow_instance
    assert flow_inventory(aws_env, config)[instance_id]["ansible_host"] == private


@pytest.mark.parametrize("config", CONFIGS)
def test_ansible_host_is_the_public_address_with_flow_connect_address_public(aws_env, flow_instance, config):
    instance_id, private, public = flow_instance
    hosts = flow_inventory(aws_env, config, "-e", "flow_connect_address=public")
    assert hosts[instance_id]["ansible_host"] == public
    assert flow_inventory(aws_env, config, "-e", "flow_connect_address=private")[instance_id]["ansible_host"] == private


def test_the_flow_picks_the_field_of_flow_connect_address(tmp_path):
    """vars/flow.yml turns the variable into the field launch, configure and clone read (default: private)."""
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(REPO / "playbooks" / "vars" / "flow.yml")],
        "tasks": [{"ansible.builtin.debug": {"msg": "field={{ flow_connect_field }}"}}],
    }
    book = tmp_path / "pick.yml"
    book.write_text(json.dumps([play]))
    cases = (("private", "private_ip_address"), ("public", "public_ip_address"), (None, "private_ip_address"))
    for value, field in cases:
        extra = ["-e", f"flow_connect_address={value}"] if value else []
        cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert f"field={field}" in proc.stdout, proc.stdout[-2000:]


def test_the_readme_recipe_connects_to_the_public_address(aws_env, flow_instance):
    """README's "On your AWS account": its variables, given as it gives them, reach the inventory config."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## On your AWS account", 1)[1].split("\n## ", 1)[0]
    given = re.findall(r"-e '(\{.*?\})'", section)[0]  # the run (the teardown's follows)
    recipe = json.loads(given)
    assert recipe["flow_connect_address"] == "public"
    assert all(cidr.endswith("/32") for cidr in recipe["flow_ssh_cidrs"])
    assert len(recipe["flow_name"]) <= 28
    instance_id, _private, public = flow_instance
    for config in CONFIGS:
        assert flow_inventory(aws_env, config, "-e", given)[instance_id]["ansible_host"] == public
