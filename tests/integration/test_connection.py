"""Connection settings and errors against real local endpoints, as a real account and its network give them.

A small forwarding proxy on 127.0.0.1 stands in front of moto: over TLS with a certificate from a CA made
here, or over plain HTTP counting the actions it forwards, to show which endpoint a service used.
The sandbox's strict API front (IAM enforced, consistency windows; no hosts, no root) shows
denied calls decoded and imaging through the windows. Modules run with
``ansible`` ad hoc, the inventory with ``ansible-inventory``.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import importlib.util
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def make_ca_and_server_cert(directory):
    """A CA and a certificate for 127.0.0.1 signed by it; returns (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - the collection supports Python 3.9 sanity

    def cert(subject, issuer, public_key, signing_key, ca, extensions=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("bakery test CA", "bakery test CA", ca_key.public_key(), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server_cert = cert("127.0.0.1", "bakery test CA", key.public_key(), ca_key, False, [san])
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextlib.contextmanager
def forwarding_proxy(target, tls=None):
    """Forward every POST to ``target``; yield ``(url, actions)`` where actions lists the Action of each request."""
    actions = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            actions.append(urllib.parse.parse_qs(body.decode()).get("Action", ["?"])[0])
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, answer_headers, payload = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as err:
                status, answer_headers, payload = err.code, err.headers, err.read()
            self.send_response(status)
            self.send_header("Content-Type", answer_headers.get("Content-Type", "text/xml"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", actions
    finally:
        server.shutdown()
        server.server_close()


def ami_find(env, tmp_path, **args):
    """Run bakery.ec2.ami_find ad hoc; return (rc, result dict of localhost)."""
    return run_module(env, tmp_path, "ami_find", owners=["self"], name="bakery-web-*", **args)


def run_module(env, tmp_path, module, **args):
    """Run the module bakery.ec2.<module> ad hoc; return (rc, result dict of localhost)."""
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-o", "-m", f"bakery.ec2.{module}", "-a", json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    # One line per host: "localhost | SUCCESS => {...}" (or FAILED!)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("localhost | ")), "")
    try:
        result = json.loads(line.split(" => ", 1)[1])
    except (ValueError, IndexError):
        pytest.fail(f"no result ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, result


@pytest.fixture
def tls_endpoint(moto, tmp_path):
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    with forwarding_proxy(moto, tls=(cert, key)) as (url, _actions):
        yield url, ca


def tls_env(aws_env, url):
    env = {k: v for k, v in aws_env.items() if k not in ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")}
    env["AWS_ENDPOINT_URL_EC2"] = url
    return env


def test_aws_ca_bundle_environment_is_honoured(aws_env, tls_endpoint, tmp_path):
    url, ca = tls_endpoint
    rc, result = ami_find(dict(tls_env(aws_env, url), AWS_CA_BUNDLE=str(ca)), tmp_path)
    assert rc == 0, result
    assert result["image"]["name"].startswith("bakery-web-")


def test_aws_ca_bundle_option(aws_env, tls_endpoint, tmp_path):
    url, ca = tls_endpoint
    rc, result = ami_find(tls_env(aws_env, url), tmp_path, aws_ca_bundle=str(ca))
    assert rc == 0, result


def test_without_the_ca_the_certificate_is_refused_in_one_line(aws_env, tls_endpoint, tmp_path):
    url, _ca = tls_endpoint
    rc, result = ami_find(tls_env(aws_env, url), tmp_path)
    assert rc != 0
    assert "\n" not in result["msg"]
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"] or "certificate verify failed" in result["msg"]


def test_validate_certs_false_still_disables_checking_over_a_bundle(aws_env, tls_endpoint, tmp_path):
    url, _ca = tls_endpoint
    (tmp_path / "other").mkdir()
    other_ca, _cert, _key = make_ca_and_server_cert(tmp_path / "other")  # a CA that did not sign the server's
    env = dict(tls_env(aws_env, url), AWS_CA_BUNDLE=str(other_ca))
    rc, result = ami_find(env, tmp_path, validate_certs=False)
    assert rc == 0, result


def test_missing_ca_bundle_file_fails_in_one_line_naming_it(aws_env, tls_endpoint, tmp_path):
    url, _ca = tls_endpoint
    rc, result = ami_find(tls_env(aws_env, url), tmp_path, aws_ca_bundle=str(tmp_path / "nope.pem"))
    assert rc != 0
    assert (
        result["msg"]
        == f"Session: InvalidCABundle: aws_ca_bundle: '{tmp_path / 'nope.pem'}' is not a file (AWS_CA_BUNDLE)"
    )


def test_debug_botocore_endpoint_logs_lists_the_actions_called(aws_env, tmp_path):
    rc, result = ami_find(aws_env, tmp_path, debug_botocore_endpoint_logs=True)
    assert rc == 0, result
    assert result["resource_actions"] == ["ec2:DescribeImages"]
    rc, result = ami_find(aws_env, tmp_path)
    assert "resource_actions" not in result


def test_aws_config_is_applied_and_a_bad_key_fails_in_one_line(aws_env, tmp_path):
    rc, result = ami_find(aws_env, tmp_path, aws_config={"connect_timeout": 5, "read_timeout": 20})
    assert rc == 0, result
    rc, result = ami_find(aws_env, tmp_path, aws_config={"no_such_setting": 1})
    assert rc != 0
    assert result["msg"].startswith("Session: InvalidConfig: aws_config: ")
    assert "no_such_setting" in result["msg"]


def test_inventory_assume_role_uses_the_sts_endpoint_not_endpoint_url(aws_env, moto, tmp_path):
    """endpoint_url is EC2's; STS follows AWS_ENDPOINT_URL_STS as botocore defines it."""
    with forwarding_proxy(moto) as (sts_url, sts_actions), forwarding_proxy(moto) as (ec2_url, ec2_actions):
        env = {k: v for k, v in aws_env.items() if k != "AWS_ENDPOINT_URL"}
        env["AWS_ENDPOINT_URL_STS"] = sts_url
        path = tmp_path / "role.instances.yml"
        config = {
            "plugin": "bakery.ec2.instances",
            "regions": ["us-east-1"],
            "endpoint_url": ec2_url,
            "assume_role_arn": "arn:aws:iam::123456789012:role/inventory-reader",
        }
        path.write_text(json.dumps(config))
        proc = subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0 and "Unable to parse" not in proc.stderr, proc.stderr
    assert sts_actions == ["AssumeRole"]
    assert ec2_actions == ["DescribeInstances"]


def test_service_specific_endpoint_variable_for_ec2(aws_env, moto, tmp_path):
    with forwarding_proxy(moto) as (ec2_url, ec2_actions):
        env = {k: v for k, v in aws_env.items() if k != "AWS_ENDPOINT_URL"}
        env["AWS_ENDPOINT_URL_EC2"] = ec2_url
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # the service-specific one wins, as in botocore
        rc, result = ami_find(env, tmp_path)
    assert rc == 0, result
    assert ec2_actions == ["DescribeImages"]


# --- the sandbox's strict API front: IAM and consistency windows ---------------------------------------

_spec = importlib.util.spec_from_file_location("bakery_strict_tests", REPO / "tests/sandbox/test_strict.py")
strict_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strict_tests)
POLICY = json.loads((REPO / "docs" / "iam-policy.json").read_text())


@pytest.fixture(scope="module")
def strict_front(tmp_path_factory):
    with strict_tests.api_front(tmp_path_factory, 4.0) as out:
        yield out


def front_env(aws_env, front, key):
    url, _keys = front
    env = {k: v for k, v in aws_env.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1], AWS_DEFAULT_REGION="us-east-1"
    )
    return env


def user_without(front, name, *actions):
    """A user whose policy is docs/iam-policy.json without ``actions``; returns its keys."""
    iam = strict_tests.client(front, service="iam")
    policy = json.loads(json.dumps(POLICY))
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a not in actions]
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="bakery-ec2", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def admin_instance(front):
    """An instance launched by the admin, once the API names it (past its consistency window)."""
    return strict_tests.visible_instance(strict_tests.client(front))


def test_least_privilege_user_images_through_the_consistency_windows(aws_env, strict_front, tmp_path):
    """Create, share and copy an image as the least-privilege user while EC2 does not name new images yet."""
    env = front_env(aws_env, strict_front, strict_front[1][strict_tests.iam.USER])
    instance_id = admin_instance(strict_front)
    args = {
        "instance_id": instance_id,
        "name": "strict-web-1",
        "no_reboot": True,
        "tags": {"Role": "web"},
        "launch_permissions": ["111122223333"],
        "copy_to_regions": ["eu-west-1"],
        "debug_botocore_endpoint_logs": True,
    }
    rc, result = run_module(env, tmp_path, "ami_from_instance", **args)
    assert rc == 0, result
    # CreateImage tagged the image and its snapshots (moto ignores CopyImage's tags: the copy is tagged after)
    assert not any(a.startswith("tag ") and "(us-east-1)" in a for a in result["actions"]), result["actions"]
    ec2 = strict_tests.client(strict_front)
    (snapshot,) = ec2.describe_snapshots(SnapshotIds=result["snapshot_ids"])["Snapshots"]
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]}["Role"] == "web"  # tagged by CreateImage
    assert set(result["resource_actions"]) <= {a for s in POLICY["Statement"] for a in s["Action"]}
    rc, again = run_module(env, tmp_path, "ami_from_instance", **args)
    assert rc == 0 and again["changed"] is False, again


def test_denied_call_is_decoded_when_allowed(aws_env, strict_front, tmp_path):
    key = user_without(strict_front, "baker-no-create-image", "ec2:CreateImage")
    env = front_env(aws_env, strict_front, key)
    instance_id = admin_instance(strict_front)
    rc, result = run_module(env, tmp_path, "ami_from_instance", instance_id=instance_id, name="denied-1")
    assert rc != 0
    assert "\n" not in result["msg"]
    assert result["msg"].startswith("CreateImage: UnauthorizedOperation: You are not authorized")
    # CreateImage is authorized on the instance it images (as EC2's Service Authorization Reference lists)
    arn = strict_tests.ec2_arn("us-east-1", "instance", instance_id)
    assert f"Decoded reason: ec2:CreateImage on {arn} denied to arn:aws:iam::" in result["msg"]
    assert "user/baker-no-create-image (no statement allows it)" in result["msg"]


def test_denied_call_says_how_to_decode_it_otherwise(aws_env, strict_front, tmp_path):
    key = user_without(strict_front, "baker-no-decode", "ec2:CreateImage", "sts:DecodeAuthorizationMessage")
    env = front_env(aws_env, strict_front, key)
    rc, result = run_module(
        env, tmp_path, "ami_from_instance", instance_id=admin_instance(strict_front), name="denied-2"
    )
    assert rc != 0
    assert "\n" not in result["msg"]
    assert (
        "The reason could not be decoded (AccessDenied): decode it with 'aws sts decode-authorization-message "
        in (result["msg"])
    )
    assert "--encoded-message bks1." in result["msg"]
    assert result["msg"].endswith("(needs sts:DecodeAuthorizationMessage)")


def test_rerun_after_a_removed_copy_makes_a_new_copy_despite_the_used_client_token(aws_env, strict_front, tmp_path):
    """The sandbox replays CopyImage for a used ClientToken, as EC2 does; the removed copy is not met again."""
    env = front_env(aws_env, strict_front, strict_front[1][strict_tests.iam.USER])
    args = {"instance_id": admin_instance(strict_front), "name": "strict-copy-1", "no_reboot": True}
    rc, result = run_module(env, tmp_path, "ami_from_instance", copy_to_regions=["eu-west-1"], **args)
    assert rc == 0, result
    first = result["copies"]["eu-west-1"]
    # What the module does with a copy that ended failed: deregister it (and delete its snapshots).
    strict_tests.client(strict_front, region="eu-west-1").deregister_image(ImageId=first)
    rc, result = run_module(env, tmp_path, "ami_from_instance", copy_to_regions=["eu-west-1"], **args)
    assert rc == 0, result
    assert result["copies"]["eu-west-1"] != first
    assert f"copy {result['image_id']} to eu-west-1 as 'strict-copy-1'" in result["actions"]
