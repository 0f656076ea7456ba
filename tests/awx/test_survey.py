"""Bad survey answers: the job fails at its first task with one line naming the variable and the entry.

Run as AWX runs the launch template (extra variables from the survey, no key file on the controller), and
without AWS credentials: a check that let a job through would fail on the first AWS call instead, so each
test also shows that the check comes before anything is asked of (or created in) EC2.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from awxjobs import COLLECTIONS, REPO, Awx

# Survey answers that are fine, changed one at a time below.
GOOD = {
    "flow_name": "survey-check",
    "flow_key_path": "",
    "webserver_admin_password": "correct-horse-battery",
    "flow_ssh_cidrs": "172.31.0.0/16",
    # As on AWS, where the job has no sandbox CA: the load balancer's certificate.
    "flow_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/survey",
}

CASES = [
    (
        {"flow_ssh_cidrs": "172.31.0.0/16, 10.1.2.300/32"},
        "flow_ssh_cidrs: '10.1.2.300/32' is not an IPv4 or IPv6 CIDR",
    ),
    (
        {"flow_ssh_cidrs": "172.31.0.0/16\n203.0.113.7\n"},
        "flow_ssh_cidrs: '203.0.113.7' is not an IPv4 or IPv6 CIDR",
    ),
    (
        {"flow_http_cidrs": ["172.31.0.0/16", "example.com"]},
        "flow_http_cidrs: 'example.com' is not an IPv4 or IPv6 CIDR",
    ),
    ({"flow_ssh_cidrs": " \n, "}, "flow_ssh_cidrs: no CIDR given"),
    (
        {"webserver_admin_password": ""},
        "webserver_admin_password: not given; with flow_key_path empty (the Machine credential route) the job must "
        "give it",
    ),
    ({"webserver_admin_password": "eleven-char"}, "webserver_admin_password: shorter than 12 characters"),
    ({"flow_store": "mysql"}, "flow_store: 'mysql' is not a store of the app (sqlite or dynamodb)"),
    # On AWS (no sandbox CA in the job's environment) HTTPS needs the user's certificate.
    (
        {"flow_certificate_arn": ""},
        "flow_certificate_arn: empty with flow_https true; give the ARN of an ACM certificate in us-east-1",
    ),
    ({"flow_tls_policy": "TLSv1.3"}, "flow_tls_policy: 'TLSv1.3' is not an ELB security policy"),
    # A flow_name that makes a name AWS refuses (ELB names have no '_') is found before anything is asked of AWS.
    (
        {"flow_name": "Survey_Check"},
        "flow_lb_name: 'Survey_Check-lb' is not a valid name (at most 32 letters, digits and hyphens",
    ),
]


@pytest.mark.parametrize(("answers", "line"), CASES, ids=[c[1].split(":")[0] + str(i) for i, c in enumerate(CASES)])
def test_bad_survey_answer_is_one_line(tmp_path, answers, line):
    awx = Awx(tmp_path, credential_env={}, machine_key="", machine_user="admin", extra_vars=GOOD)
    job = awx.job("bakery 1 launch", "launch.yml", {"_meta": {"hostvars": {}}}, answers, timeout=120)
    assert job.status == "failed", job.stdout[-2000:]
    fatal = [ln for ln in job.stdout.splitlines() if ln.startswith("fatal: ")]
    assert len(fatal) == 1, job.stdout[-2000:]
    assert f'"msg": "{line}' in fatal[0], fatal[0]
    assert "Find the base image" not in job.stdout
    assert "correct-horse-battery" not in job.stdout


def test_survey_forms_of_a_cidr_list_give_the_same_list():
    """A list, a comma-separated string and a textarea's lines are the same list for the firewall."""
    forms = [
        ["10.0.0.0/8", "192.0.2.0/24"],
        "10.0.0.0/8,192.0.2.0/24",
        "10.0.0.0/8, 192.0.2.0/24",
        "10.0.0.0/8\n192.0.2.0/24\n",
    ]
    for form in forms:
        out = subprocess.run(
            [str(REPO / ".venv/bin/ansible"), "-i", "localhost,", "localhost", "-c", "local", "-m", "debug",
             "-a", "var=flow_firewall", "-e", f"@{REPO}/playbooks/vars/flow.yml",
             "-e", json.dumps({"flow_ssh_cidrs": form})],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        firewall = json.loads(out.split("=>", 1)[1])["flow_firewall"]
        assert firewall[0] == {"proto": "tcp", "ports": 22, "cidr": ["10.0.0.0/8", "192.0.2.0/24"]}, form
        # HTTP: the VPC's range by default, not the world.
        assert firewall[1]["cidr"] == ["172.31.0.0/16"]


def test_a_region_the_inventory_config_does_not_list_is_one_line_at_the_start():
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(REPO / "playbooks/inventory/bakery.instances.yml"),
         str(REPO / "playbooks/flow.yml"), "-e", "flow_region=eu-west-1"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1"),
    )  # fmt: skip
    fatal = [ln for ln in proc.stdout.splitlines() if ln.startswith("fatal: ")]
    assert proc.returncode != 0
    assert len(fatal) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        '"msg": "flow_region eu-west-1 is not a region of the inventory config (it lists us-east-1): '
        "set its regions to [eu-west-1], or flow_region (AWS_REGION) to one of them" in fatal[0]
    ), fatal[0]
    assert "Find the base image" not in proc.stdout


def test_a_region_the_synced_inventory_does_not_list_is_one_line_at_the_start(tmp_path):
    # What an inventory update of playbooks/inventory/bakery.instances.yml holds before launch (no host yet):
    # the regions the plugin listed, as ansible-inventory --export writes them (test_workflow checks a real one).
    snapshot = {
        "_meta": {"hostvars": {}},
        "all": {"children": ["ungrouped"], "vars": {"bakery_ec2_regions": [{"__ansible_unsafe": "us-east-1"}]}},
    }
    awx = Awx(tmp_path, credential_env={}, machine_key="", machine_user="admin", extra_vars=GOOD)
    job = awx.job("bakery 1 launch", "launch.yml", snapshot, {"flow_region": "eu-west-1"}, timeout=120)
    assert job.status == "failed", job.stdout[-2000:]
    fatal = [ln for ln in job.stdout.splitlines() if ln.startswith("fatal: ")]
    assert len(fatal) == 1, job.stdout[-2000:]
    assert (
        '"msg": "flow_region eu-west-1 is not a region of the inventory (it lists us-east-1): set the regions of its '
        "source to [eu-west-1] and sync it, or flow_region (AWS_REGION) to one of them" in fatal[0]
    ), fatal[0]
    assert "Find the base image" not in job.stdout
