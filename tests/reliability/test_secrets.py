"""No secret in any output: every module and the inventory plugin at -vvv (with --diff), results included.

Secrets planted: the secret key and a session token (as options and in the environment), user data,
and an SSH private key whose public half is imported. The test searches everything Ansible printed
and every registered result (written to a file by the play) for each secret, and for the base64
forms in which user data travels.
"""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from conftest import REPO, SECRET_KEY, visible

SECRET = "SecretKeyMarker-7c1d9e0b2a4f6385XYZ"
TOKEN = "SessionTokenMarker-94e1f0c2b7d8a653QRS"
USER_DATA = "#!/bin/sh\necho UserDataMarker-b81f3a7c > /tmp/planted\n"


def b64_fragments(text: str) -> list[str]:
    """Base64 of ``text`` at each of the three byte alignments (as it may appear inside a longer blob)."""
    frags = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + text.encode()).decode()
        frags.append(enc[4 : len(enc) - 4])
    return frags


PLAY = """
- name: Every module at -vvv with secrets in play
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - secrets.yml  # as a vault would hold them; ansible-core quotes playbook lines around a failing task
  module_defaults:
    group/bakery.ec2.ec2:
      region: us-east-1
      secret_key: "{{{{ planted_secret_key }}}}"
      session_token: "{{{{ planted_session_token }}}}"
  tasks:
    - name: Find the base image
      bakery.ec2.ami_find:
        owners: ["136693071363"]
        name: debian-12-amd64-*
        architecture: x86_64
      register: found

    - name: Launch with user data and an imported key
      bakery.ec2.ec2_launch:
        name: secrets-web
        image_id: "{{{{ found.image_id }}}}"
        key_name: secrets-key
        public_key: "{{{{ lookup('ansible.builtin.file', '{key}.pub') }}}}"
        user_data: "{{{{ lookup('ansible.builtin.file', '{user_data}') }}}}"
        firewall:
          - ports: 22
            cidr: 10.0.0.0/8
        wait: false
      register: launched

    - name: Launch again (idempotent; reconciles)
      bakery.ec2.ec2_launch:
        name: secrets-web
        image_id: "{{{{ found.image_id }}}}"
        key_name: secrets-key
        public_key: "{{{{ lookup('ansible.builtin.file', '{key}.pub') }}}}"
        user_data: "{{{{ lookup('ansible.builtin.file', '{user_data}') }}}}"
        firewall:
          - ports: 22
            cidr: 10.0.0.0/8
        wait: false
      register: relaunched

    - name: Bake an image
      bakery.ec2.ami_from_instance:
        instance_name: secrets-web
        name: secrets-web-v1
        tags:
          Purpose: secrets
      register: baked

    - name: Remove the image
      bakery.ec2.ami_from_instance:
        name: secrets-web-v1
        state: absent
      register: unbaked

    - name: Remove the instances, group and key pair
      bakery.ec2.ec2_launch:
        name: secrets-web
        state: absent
        firewall:
          - ports: 22
            cidr: 10.0.0.0/8
        key_name: secrets-key
        public_key: "{{{{ lookup('ansible.builtin.file', '{key}.pub') }}}}"
      register: removed

    - name: Write every result for the test to read
      ansible.builtin.copy:
        dest: "{results}"
        content: "{{{{ [found, launched, relaunched, baked, unbaked, removed] | to_json }}}}"
        mode: "0600"
"""


def secrets_in(text: str, private_key: str) -> list[str]:
    key_body = "".join(line for line in private_key.splitlines() if line and not line.startswith("-----"))
    needles = {
        "secret key (option)": [SECRET],
        "secret key (environment)": [SECRET_KEY],
        "session token": [TOKEN],
        "user data": ["UserDataMarker-b81f3a7c", *b64_fragments("UserDataMarker-b81f3a7c"), *b64_fragments(USER_DATA)],
        "private key": ["PRIVATE KEY", key_body[:40], key_body[-40:]],
    }
    return [what for what, texts in needles.items() if any(t and t in text for t in texts)]


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_secrets"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_modules_at_vvv_show_no_secret(env, tmp_path, run_ansible, ssh_key, ec2):
    user_data = tmp_path / "user-data.sh"
    user_data.write_text(USER_DATA)
    results = tmp_path / "results.json"
    play = tmp_path / "play.yml"
    (tmp_path / "secrets.yml").write_text(f"planted_secret_key: {SECRET}\nplanted_session_token: {TOKEN}\n")
    play.write_text(PLAY.format(secret=SECRET, token=TOKEN, key=ssh_key, user_data=user_data, results=results))
    proc = run_ansible("ansible-playbook", "-vvv", "--diff", "-i", "localhost,", play, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # the play did what it says: launched with the user data, baked, removed
    found = json.loads(results.read_text())
    assert found[1]["changed"] and found[1]["instances"], found[1]
    assert found[3]["changed"] and found[3]["image_id"].startswith("ami-")
    assert found[5]["changed"]
    private_key = ssh_key.read_text()
    planted = SECRET + SECRET_KEY + TOKEN + base64.b64encode(USER_DATA.encode()).decode() + private_key
    assert len(secrets_in(planted, private_key)) == 5  # the search finds each secret when it is there
    assert secrets_in(out, private_key) == [], "secret in the -vvv output"
    assert secrets_in(results.read_text(), private_key) == [], "secret in a returned result"
    assert "UserData" not in json.dumps(found), "user data attribute returned"
    # and the task really was given the secrets (masked, not absent): the invocation shows them masked
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out


def test_failures_at_vvv_show_no_secret(env, tmp_path, run_ansible, ssh_key):
    """Failing tasks (bad input and an AWS error) print no secret either."""
    user_data = tmp_path / "user-data.sh"
    user_data.write_text(USER_DATA + "#" * 17000)  # too big: refused, and must not be echoed
    play = tmp_path / "play.yml"
    (tmp_path / "secrets.yml").write_text(f"planted_secret_key: {SECRET}\nplanted_session_token: {TOKEN}\n")
    play.write_text(
        f"""
- name: Failures at -vvv
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - secrets.yml
  module_defaults:
    group/bakery.ec2.ec2:
      secret_key: "{{{{ planted_secret_key }}}}"
      session_token: "{{{{ planted_session_token }}}}"
  tasks:
    - name: Oversized user data
      bakery.ec2.ec2_launch:
        name: secrets-fail
        image_id: ami-0123456789abcdef0
        user_data: "{{{{ lookup('ansible.builtin.file', '{user_data}') }}}}"
      ignore_errors: true
    - name: Unknown image
      bakery.ec2.ami_find:
        image_ids: [ami-0000000000000dead]
      ignore_errors: true
    - name: Unknown instance
      bakery.ec2.ami_from_instance:
        instance_name: nothing-here
        name: secrets-fail-v1
      ignore_errors: true
"""
    )
    proc = run_ansible("ansible-playbook", "-vvv", "-i", "localhost,", play, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert "ignored=3" in out, out[-3000:]
    assert secrets_in(out, ssh_key.read_text()) == []


def test_inventory_at_vvv_shows_no_secret(env, tmp_path, run_ansible, ec2):
    if not (REPO / "plugins" / "inventory" / "instances.py").exists():
        pytest.skip("the inventory plugin is not on this branch yet")
    image = ec2.describe_images(Owners=["136693071363"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        UserData=USER_DATA,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "inv"}]}],
    )["Instances"][0]
    visible(ec2, instances=[inst["InstanceId"]])
    cfg = tmp_path / "secrets.instances.yml"
    cfg.write_text(
        f"plugin: bakery.ec2.instances\nregions: [us-east-1]\nsecret_key: {SECRET}\nsession_token: {TOKEN}\n"
    )
    proc = run_ansible("ansible-inventory", "-vvv", "-i", cfg, "--list", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    listing = json.loads(proc.stdout[proc.stdout.index("\n{") :])  # -vvv prints its settings first
    assert listing["_meta"]["hostvars"], "the instance is in the inventory"
    assert secrets_in(out, "") == []
