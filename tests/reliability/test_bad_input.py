"""Bad-input catalogue: every case fails in one line naming the bad value, with no traceback, and nothing is created.

Modules run as Ansible runs them (arguments file) against the sandbox's API front (moto + the sandbox
middleware, fixture ``api``); the inventory plugin runs through ``ansible-inventory`` and the role
through ``ansible-playbook``. Before and after each case the test lists every instance, image,
snapshot, key pair, security group, volume and tag in the region: they must be the same.
"""

from __future__ import annotations

import http.server
import os
import threading

import pytest
from conftest import ACCESS_KEY, REPO, post, resources, visible

DEBIAN_X86 = "{debian_x86}"  # replaced by the newest Debian 12 x86_64 image of the catalogue
FULL = os.environ.get("RELIABILITY_FULL") == "1"
HAVE = {p.stem for p in (REPO / "plugins" / "modules").glob("*.py")}
HAVE_INVENTORY = (REPO / "plugins" / "inventory" / "instances.py").exists()


def case(id_, module, args, named, setup=None, env=None, slow=False):
    marks = []
    if module not in HAVE:
        marks.append(pytest.mark.skip(reason=f"module {module} is not on this branch yet"))
    if slow and not FULL:
        marks.append(pytest.mark.skip(reason="slow (retries for ~45 s); runs in make reliability"))
    return pytest.param(module, args, named, setup, env or {}, id=f"{module}-{id_}", marks=marks)


LONG = "x" * 129
MODULE_CASES = [
    # --- ami_retire
    case("no-family", "ami_retire", {"owners": ["self"]}, "give name or tags"),
    case("keep-zero", "ami_retire", {"tags": {"BakeryFlow": "web"}, "keep": 0}, "keep: 0"),
    case("keep-negative", "ami_retire", {"tags": {"BakeryFlow": "web"}, "keep": -3}, "keep: -3"),
    case("keep-days-malformed", "ami_retire", {"tags": {"BakeryFlow": "web"}, "keep_days": "a month"}, "keep_days"),
    case("keep-days-negative", "ami_retire", {"tags": {"BakeryFlow": "web"}, "keep_days": -1}, "keep_days: -1"),
    case("tags-not-a-dict", "ami_retire", {"tags": "BakeryFlow"}, "tags"),
    case(
        "region-unknown", "ami_retire", {"tags": {"BakeryFlow": "web"}, "regions": ["us-east-1", "mars-1"]}, "'mars-1'"
    ),
    # --- ami_find
    case("owner-not-an-account", "ami_find", {"owners": ["12345"]}, "'12345'"),
    case("owner-unknown-alias", "ami_find", {"owners": ["amazonn"]}, "'amazonn'"),
    case("image-id-malformed", "ami_find", {"image_ids": ["ami-xyz"]}, "'ami-xyz'"),
    case("image-id-wrong-kind", "ami_find", {"image_ids": ["i-0123456789abcdef0"]}, "'i-0123456789abcdef0'"),
    case("image-id-unknown", "ami_find", {"image_ids": ["ami-0000000000000dead"]}, "ami-0000000000000dead"),
    case("architecture", "ami_find", {"architecture": "amd64"}, "amd64"),
    case("sort-by", "ami_find", {"sort_by": "date"}, "date"),
    case(
        "filter-conflicts-with-name", "ami_find", {"owners": ["self"], "name": "a-*", "filters": {"name": "b-*"}}, "b-*"
    ),
    case("name-without-owners", "ami_find", {"name": "debian-12-*"}, "'debian-12-*' without owners"),
    case("ssm-parameter-missing", "ami_find", {"ssm_parameter": "/aws/service/none"}, "'/aws/service/none'"),
    case("regions-malformed", "ami_find", {"owners": ["self"], "regions": ["us-east-1", "mars-1"]}, "'mars-1'"),
    case("owners-and-owner-filter", "ami_find", {"owners": ["self"], "filters": {"owner-id": "1"}}, "owner-id"),
    case("no-match", "ami_find", {"owners": ["136693071363"], "name": "debian-99-*"}, "debian-99-*"),
    case("region-malformed", "ami_find", {"region": "useast1"}, "'useast1'"),
    case("region-upper-case", "ami_find", {"region": "US-EAST-1"}, "'US-EAST-1'"),
    case("profile-unknown", "ami_find", {"profile": "ghost-profile"}, "'ghost-profile'"),
    case("endpoint-not-a-url", "ami_find", {"endpoint_url": "not a url"}, "'not a url'"),
    case("endpoint-not-ec2", "ami_find", {"endpoint_url": "{web_page}"}, "{web_page}"),
    case("endpoint-closed-port", "ami_find", {"endpoint_url": "http://127.0.0.1:9"}, "http://127.0.0.1:9", slow=True),
    case(
        "no-credentials",
        "ami_find",
        {},
        "no AWS credentials",
        env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "HOME": "{tmp}"},
    ),
    case("secret-key-only", "ami_find", {}, "access_key (AWS_ACCESS_KEY_ID) is not", env={"AWS_ACCESS_KEY_ID": None}),
    case(
        "token-without-keys",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web"},
        "session_token",
        env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": "token-value-123456789"},
    ),
    case(
        "expired-session-token",
        "ami_find",
        {"session_token": "expired-token-value-123"},
        "ExpiredToken",
        setup="expired_token",
    ),
    # --- ami_from_instance
    case("name-too-short", "ami_from_instance", {"name": "ab", "instance_name": "web"}, "'ab'"),
    case("name-too-long", "ami_from_instance", {"name": LONG, "instance_name": "web"}, LONG),
    case("name-bad-chars", "ami_from_instance", {"name": "web|v1", "instance_name": "web"}, "'web|v1'"),
    case("name-bang", "ami_from_instance", {"name": "web v1!", "instance_name": "web"}, "'web v1!'"),
    case("instance-id-malformed", "ami_from_instance", {"name": "web-v1", "instance_id": "i-xyz"}, "'i-xyz'"),
    case(
        "instance-id-unknown",
        "ami_from_instance",
        {"name": "web-v1", "instance_id": "i-0123456789abcdef0"},
        "i-0123456789abcdef0",
    ),
    case("instance-name-unknown", "ami_from_instance", {"name": "web-v1", "instance_name": "ghost"}, "'ghost'"),
    case("instance-name-twice", "ami_from_instance", {"name": "web-v1", "instance_name": "twin"}, "'twin'", "twins"),
    case("instance-terminated", "ami_from_instance", {"name": "web-v1", "instance_name": "gone"}, "'gone'", "gone"),
    case(
        "instance-id-and-name",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "instance_id": "i-0123456789abcdef0"},
        "instance_id|instance_name",
    ),
    case("instance-missing", "ami_from_instance", {"name": "web-v1"}, "instance_id, instance_name"),
    case(
        "tag-aws-prefix",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "tags": {"aws:x": "1"}},
        "'aws:x'",
        "web",
    ),
    case(
        "tags-too-many",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "tags": {f"k{i}": "v" for i in range(51)}},
        "51 tags",
        "web",
    ),
    case(
        "tag-key-too-long",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "tags": {"k" * 129: "v"}},
        "k" * 129,
        "web",
    ),
    case(
        "launch-permission",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "launch_permissions": ["1234"]},
        "'1234'",
        "web",
    ),
    case(
        "copy-to-own-region",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "copy_to_regions": ["us-east-1"]},
        "'us-east-1'",
        "web",
    ),
    case(
        "copy-to-bad-region",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "copy_to_regions": ["moon-1"]},
        "'moon-1'",
        "web",
    ),
    case(
        "copy-twice",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "copy_to_regions": ["eu-west-1", "eu-west-1"]},
        "'eu-west-1'",
        "web",
    ),
    case(
        "copy-item-unknown-key",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "copy_to_regions": [{"region": "eu-west-1", "key": "alias/x"}]},
        "'key': 'alias/x'",
        "web",
    ),
    case(
        "copy-key-of-another-region",
        "ami_from_instance",
        {
            "name": "web-v1",
            "instance_name": "web",
            "copy_to_regions": ["eu-west-1"],
            "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        },
        "a key of us-east-1",
        "web",
    ),
    case(
        "description-too-long",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "description": "d" * 300},
        "300 characters",
        "web",
    ),
    case(
        "wait-timeout-negative",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "wait_timeout": -5},
        "-5",
        "web",
    ),
    case(
        "on-exists-choice",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "on_exists": "overwrite"},
        "overwrite",
        "web",
    ),
    case(
        "on-exists-fail",
        "ami_from_instance",
        {"name": "web-v1", "instance_name": "web", "on_exists": "fail"},
        "'web-v1'",
        "image_exists",
    ),
    # --- ec2_launch
    case("image-malformed", "ec2_launch", {"name": "web", "image_id": "ami-nothex"}, "'ami-nothex'"),
    case("image-unknown", "ec2_launch", {"name": "web", "image_id": "ami-0000000000000dead"}, "ami-0000000000000dead"),
    case("image-parameter-missing", "ec2_launch", {"name": "web", "image_id": "resolve:ssm:/none"}, "'/none'"),
    case("type-unknown", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "instance_type": "t3.mega"}, "t3.mega"),
    case(
        "type-wrong-arch",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "instance_type": "t4g.micro"},
        "t4g.micro",
    ),
    case(
        "subnet-malformed", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "subnet_id": "subnet-zz"}, "subnet-zz"
    ),
    case(
        "subnet-unknown",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "subnet_id": "subnet-0123456789abcdef0"},
        "subnet-0123456789abcdef0",
    ),
    case(
        "subnets-malformed",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "subnet_ids": ["subnet-zz"]},
        "subnet-zz",
    ),
    case(
        "subnets-unknown",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "subnet_ids": ["subnet-0123456789abcdef0"]},
        "subnet-0123456789abcdef0",
    ),
    case(
        "subnets-twice",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "subnet_ids": ["subnet-0123456789abcdef0"] * 2},
        "'subnet-0123456789abcdef0' is listed twice",
    ),
    case(
        "subnets-with-subnet",
        "ec2_launch",
        {
            "name": "web",
            "image_id": DEBIAN_X86,
            "subnet_ids": ["subnet-0123456789abcdef0"],
            "subnet_id": "subnet-0fedcba9876543210",
        },
        "subnet-0fedcba9876543210",
    ),
    case(
        "group-unknown-id",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "security_groups": ["sg-0123456789abcdef0"]},
        "sg-0123456789abcdef0",
    ),
    case(
        "group-unknown-name",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "security_groups": ["no-such-group"]},
        "no-such-group",
    ),
    case("key-unknown", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "key_name": "ghost-key"}, "ghost-key"),
    case(
        "public-key-garbage",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "key_name": "k1", "public_key": "ssh-rsa not-base64!"},
        "public_key",
    ),
    case(
        "cidr-prefix",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": 22, "cidr": "10.0.0.0/33"}]},
        "10.0.0.0/33",
    ),
    case(
        "cidr-octet",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": 22, "cidr": "300.1.2.3/32"}]},
        "300.1.2.3/32",
    ),
    case(
        "port-too-big",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": 70000, "cidr": "10.0.0.0/8"}]},
        "70000",
    ),
    case(
        "port-range-backwards",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": "22-20", "cidr": "10.0.0.0/8"}]},
        "22-20",
    ),
    case(
        "port-name",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": "http", "cidr": "10.0.0.0/8"}]},
        "http",
    ),
    case(
        "port-missing",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"proto": "tcp", "cidr": "10.0.0.0/8"}]},
        "ports",
    ),
    case(
        "source-group-unknown",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "firewall": [{"ports": 22, "source_group": "sg-0123456789abcdef0"}]},
        "sg-0123456789abcdef0",
    ),
    case(
        "tag-aws-prefix", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "tags": {"aws:cost": "1"}}, "aws:cost"
    ),
    case(
        "tag-name-conflict", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "tags": {"Name": "other"}}, "'other'"
    ),
    case(
        "user-data-too-big",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "user_data": "#!/bin/sh\n" + "#" * 17000},
        "17010 bytes",
    ),
    case("count-negative", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "count": -1}, "-1"),
    case("state-choice", "ec2_launch", {"name": "web", "state": "gone"}, "gone"),
    case(
        "volume-twice",
        "ec2_launch",
        {
            "name": "web",
            "image_id": DEBIAN_X86,
            "volumes": [{"device_name": "/dev/sdf", "size": 8}, {"device_name": "/dev/sdf", "size": 9}],
        },
        "/dev/sdf",
    ),
    case(
        "volume-iops-gp2",
        "ec2_launch",
        {
            "name": "web",
            "image_id": DEBIAN_X86,
            "volumes": [{"device_name": "/dev/sdf", "size": 8, "type": "gp2", "iops": 3000}],
        },
        "gp2",
    ),
    case(
        "volume-kms-unencrypted",
        "ec2_launch",
        {
            "name": "web",
            "image_id": DEBIAN_X86,
            "volumes": [{"device_name": "/dev/sdf", "size": 8, "encrypted": False, "kms_key_id": "alias/x"}],
        },
        "kms_key_id",
    ),
    case(
        "hop-limit",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "metadata_options": {"http_put_response_hop_limit": 65}},
        "65",
    ),
    case(
        "zone-unknown",
        "ec2_launch",
        {"name": "web", "image_id": DEBIAN_X86, "availability_zone": "us-east-1q"},
        "us-east-1q",
    ),
    case("region-malformed", "ec2_launch", {"name": "web", "image_id": DEBIAN_X86, "region": "eu_west_1"}, "eu_west_1"),
]


# ------------------------------------------------------------------------- set-ups
def _instance(ec2, name, image):
    """A new instance, once it is visible (EC2 hides it for a moment after RunInstances)."""
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags)["Instances"][0]
    visible(ec2, instances=[inst["InstanceId"]])
    return inst


def setup_case(kind, api, ec2, image):
    if kind == "web":
        _instance(ec2, "web", image)
    elif kind == "twins":
        _instance(ec2, "twin", image)
        _instance(ec2, "twin", image)
    elif kind == "gone":
        ec2.terminate_instances(InstanceIds=[_instance(ec2, "gone", image)["InstanceId"]])
    elif kind == "image_exists":
        iid = _instance(ec2, "web", image)["InstanceId"]
        visible(ec2, images=[ec2.create_image(InstanceId=iid, Name="web-v1")["ImageId"]])
    elif kind == "expired_token":
        post(
            f"{api}/_sandbox/faults",
            {
                "action": "*",
                "code": "ExpiredToken",
                "status": 400,
                "message": "The security token included in the request is expired",
                "count": 50,
                "access_key": ACCESS_KEY,
            },
        )


@pytest.fixture(scope="module")
def web_page():
    """A local web server that answers every POST with an HTML page (an endpoint that is not EC2)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = (
                b'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><h1>Welcome</h1><br>'
                + b"<p>lorem" * 400
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def assert_one_line_failure(run_out: str, msg: str, named: str):
    assert named in msg, f"the error does not name {named!r}: {msg}"
    assert "\n" not in msg.strip(), f"not one line: {msg!r}"
    assert len(msg) < 600, f"{len(msg)} characters: {msg[:200]}..."
    assert "Traceback" not in run_out, run_out[-2000:]
    assert not msg.startswith("unexpected error"), msg


@pytest.mark.parametrize(("module", "args", "named", "setup", "env_over"), MODULE_CASES)
def test_module_bad_input(api, ec2, env, run_module, tmp_path, web_page, module, args, named, setup, env_over):
    image = sorted(
        ec2.describe_images(
            Owners=["136693071363"],
            Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}],
        )["Images"],
        key=lambda i: i["CreationDate"],
    )[-1]["ImageId"]
    if setup:
        setup_case(setup, api, ec2, image)
    subst = {"{debian_x86}": image, "{web_page}": web_page, "{tmp}": str(tmp_path)}
    args = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in args.items()}
    named = subst.get(named, named)
    for key, value in env_over.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = subst.get(value, value)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    before = resources(ec2)
    run = run_module(module, args, env)
    assert run.failed, f"{module} accepted {args}: {run.result}"
    assert "exception" not in run.result
    assert_one_line_failure(run.stdout + run.stderr, run.msg, named)
    assert resources(ec2) == before


# ------------------------------------------------------------------------- the inventory plugin
INVENTORY_CASES = [
    ("region-malformed", "regions: [useast1]", "useast1"),
    ("hostname-unknown", "hostnames: [ip-addr]", "ip-addr"),
    ("host-preference", "ansible_host_preference: [public-ip]", "public-ip"),
    ("concurrency", "max_concurrency: many", "many"),
    ("endpoint-not-a-url", "endpoint_url: 'not a url'", "not a url"),
    ("profile-unknown", "profile: ghost-profile", "ghost-profile"),
    ("keyed-group-not-a-dict", "keyed_groups: [tags]", "tags"),
]


@pytest.mark.skipif(not HAVE_INVENTORY, reason="the inventory plugin is not on this branch yet")
@pytest.mark.parametrize(("line", "named"), [pytest.param(c[1], c[2], id=c[0]) for c in INVENTORY_CASES])
def test_inventory_bad_input(api, ec2, env, tmp_path, run_ansible, line, named):
    cfg = tmp_path / "bad.instances.yml"
    cfg.write_text(f"plugin: bakery.ec2.instances\n{line}\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "1"
    image = ec2.describe_images(Owners=["136693071363"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]  # some options are per host
    visible(ec2, instances=[inst["InstanceId"]])
    before = resources(ec2)
    proc = run_ansible("ansible-inventory", "-i", cfg, "--list", env=env)
    assert proc.returncode != 0, proc.stdout[-500:]
    errors = [ln for ln in proc.stderr.splitlines() if named in ln]
    assert errors, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert resources(ec2) == before


# ------------------------------------------------------------------------- the role's argument spec
ROLE_CASES = [
    ("http-port-text", {"webserver_http_port": "eighty"}, "eighty"),
    ("http-port-range", {"webserver_http_port": 70000}, "70000"),
    ("app-port-range", {"webserver_app_port": 0}, "webserver_app_port"),
    ("ports-clash", {"webserver_http_port": 8000, "webserver_app_port": 8000}, "8000"),
    ("workers-zero", {"webserver_workers": 0}, "webserver_workers"),
    ("workers-text", {"webserver_workers": "many"}, "many"),
    ("ipv6-not-bool", {"webserver_listen_ipv6": "maybe"}, "maybe"),
    ("upload-negative", {"webserver_upload_max_bytes": -1}, "-1"),
    ("photo-px-small", {"webserver_photo_max_px": 8}, "webserver_photo_max_px: 8 is not from 16 to 4096"),
    ("photo-px-text", {"webserver_photo_max_px": "large"}, "large"),
    ("seed-not-a-list", {"webserver_seed_employees": "ada"}, "webserver_seed_employees"),
    (
        "seed-missing-email",
        {"webserver_seed_employees": [{"name": "A", "job_title": "B", "department": "C", "location": "D"}]},
        "email",
    ),
    ("metadata-url", {"webserver_metadata_url": "file:///etc/passwd"}, "file:///etc/passwd"),
    ("trusted-proxy", {"webserver_trusted_proxies": ["the load balancer"]}, "the load balancer is not an address"),
    ("admin-password-missing", {"webserver_admin_password": None}, "webserver_admin_password"),
    ("admin-password-short", {"webserver_admin_password": "tiny-pw-11c"}, "shorter than 12 characters"),
]
# A valid password for every case; None removes it.
ROLE_PASSWORD = "reliability password 1"


@pytest.mark.parametrize(("role_vars", "named"), [pytest.param(c[1], c[2], id=c[0]) for c in ROLE_CASES])
def test_role_bad_input(tmp_path, run_ansible, role_vars, named):
    import json

    from conftest import base_env

    role_vars = {
        name: value
        for name, value in {"webserver_admin_password": ROLE_PASSWORD, **role_vars}.items()
        if value is not None
    }
    play = tmp_path / "play.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "role with bad variables",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "roles": [{"role": "bakery.ec2.webserver", "vars": role_vars}],
                }
            ]
        )
    )
    env = base_env("http://127.0.0.1:9")
    proc = run_ansible("ansible-playbook", "-i", "localhost,", play, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-1500:]
    fatal = [ln for ln in out.splitlines() if ln.startswith("fatal:")]
    assert len(fatal) == 1, out[-2000:]
    assert named in fatal[0], fatal[0]
    assert "Traceback" not in out
    assert ROLE_PASSWORD not in out
    assert "tiny-pw-11c" not in out
    # nothing ran on the host: only the argument validation and the role's own check of values ran
    tasks = [ln for ln in out.splitlines() if ln.startswith("TASK [")]
    assert all("Validating arguments" in t or "argument spec cannot check" in t for t in tasks), tasks
    assert "changed=0" in out
