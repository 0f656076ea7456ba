"""Key pairs of ec2_launch: OpenSSH public keys read by cryptography, EC2's fingerprints, import and removal."""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _keypairs
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import TaskError
from ec2_fakes import ED_PUB, LIVE, RSA_PUB, RSA_PUB_MD5, instance, reservations, ssh_ed25519

KEY_QUERY = {"KeyNames": ["deploy"], "IncludePublicKey": True}
KEY_USERS = {
    "Filters": [
        {"Name": "key-name", "Values": ["deploy"]},
        {"Name": "instance-state-name", "Values": [*LIVE, "shutting-down"]},
    ]
}


def der_of(text, tmp_path):
    """DER SubjectPublicKeyInfo of an RSA .pub line by OpenSSH's own tools (ssh-keygen -e -m PKCS8)."""
    path = tmp_path / "key.pub"
    path.write_text(text)
    pem = subprocess.run(
        ["ssh-keygen", "-e", "-m", "PKCS8", "-f", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return base64.b64decode("".join(line for line in pem.splitlines() if not line.startswith("-----")))


# --- reading keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ssh-dss AAAA",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5",  # an ed25519 header under ssh-rsa, cut short
        ED_PUB.replace("ssh-ed25519", "ssh-rsa", 1),  # a whole ed25519 key labelled ssh-rsa
        "ssh-ed25519 not-base64!",
        "ssh-ed25519",
        "",
        "-----BEGIN PUBLIC KEY-----",
        ED_PUB.split()[1],  # the key without its type
    ],
)
def test_anything_but_an_ssh_rsa_or_ssh_ed25519_line_is_refused_in_one_line(text):
    with pytest.raises(ValueError, match=r"^public_key: not an OpenSSH ssh-rsa or ssh-ed25519 public key") as err:
        _keypairs.load_public_key(text)
    assert "\n" not in str(err.value)


def test_an_ecdsa_key_is_refused_though_well_formed(tmp_path):
    path = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(path)], check=True)
    with pytest.raises(ValueError, match="not an OpenSSH ssh-rsa or ssh-ed25519"):
        _keypairs.load_public_key((tmp_path / "id.pub").read_text())


def test_the_comment_and_surrounding_space_do_not_matter():
    key = _keypairs.load_public_key(RSA_PUB)
    same = _keypairs.load_public_key("  " + RSA_PUB.replace("test@example", "another comment with spaces") + "\n")
    assert _keypairs.public_key_der(key) == _keypairs.public_key_der(same)
    assert _keypairs.ssh_blob(key) == base64.b64decode(RSA_PUB.split()[1])


def test_der_and_fingerprints_of_known_keys_are_what_ec2_shows(tmp_path):
    rsa = _keypairs.load_public_key(RSA_PUB)
    assert _keypairs.public_key_der(rsa) == der_of(RSA_PUB, tmp_path)
    assert _keypairs.normalise_fingerprint(RSA_PUB_MD5) in _keypairs.key_fingerprints(rsa)
    # ed25519: the DER is the fixed SubjectPublicKeyInfo header (OID 1.3.101.112) and the 32 key bytes.
    ed = _keypairs.load_public_key(ssh_ed25519(bytes(range(32))))
    assert _keypairs.public_key_der(ed) == bytes.fromhex("302a300506032b6570032100") + bytes(range(32))


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_fingerprints_match_what_ec2_and_ssh_keygen_compute(tmp_path, key_type):
    path = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    text = (tmp_path / "id.pub").read_text()
    key = _keypairs.load_public_key(text)
    forms = _keypairs.key_fingerprints(key)
    if key_type == "rsa":  # AWS: MD5 of the DER key, colon hex
        der = der_of(text, tmp_path)
        assert _keypairs.public_key_der(key) == der
        aws = ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())
    else:  # AWS: base64 SHA-256, as ssh-keygen -l shows it
        listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=True, capture_output=True, text=True)
        aws = listed.stdout.split()[1] + "="
    assert _keypairs.normalise_fingerprint(aws) in forms
    md5 = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(path)], check=True, capture_output=True, text=True)
    assert _keypairs.normalise_fingerprint(md5.stdout.split()[1]) in forms


@pytest.mark.parametrize(
    ("pair", "same"),
    [
        ({"PublicKey": RSA_PUB.replace("test@example", "other")}, True),
        ({"PublicKey": ED_PUB}, False),
        ({"KeyFingerprint": RSA_PUB_MD5}, True),
        ({"KeyFingerprint": RSA_PUB_MD5.upper()}, True),
        ({"KeyFingerprint": "aa:bb"}, False),
        # A public key EC2 shows in a form we cannot read: the fingerprint decides.
        ({"PublicKey": "ssh-rsa garbage", "KeyFingerprint": RSA_PUB_MD5}, True),
    ],
)
def test_same_public_key_by_the_key_or_else_by_its_fingerprint(pair, same):
    assert _keypairs.same_public_key(dict(pair, KeyName="deploy"), RSA_PUB) is same


# --- the key pair in EC2 ----------------------------------------------------------------------------


def test_a_missing_key_pair_is_imported_only_when_a_public_key_is_given(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "no such key", expected_params=KEY_QUERY)
    assert _keypairs.check_key_pair(client, "deploy", ED_PUB) is True
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "no such key", expected_params=KEY_QUERY)
    with pytest.raises(TaskError, match=r"^key_name: key pair 'deploy' not found in us-east-1$"):
        _keypairs.check_key_pair(client, "deploy", None)
    assert _keypairs.check_key_pair(client, None, None) is False  # no key_name: no call at all


def test_an_existing_key_pair_with_another_key_is_never_overwritten(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "aa:bb"}]})
    with pytest.raises(
        TaskError, match=r"^public_key: key pair 'deploy' exists with another key \(fingerprint aa:bb\)"
    ):
        _keypairs.check_key_pair(client, "deploy", RSA_PUB)
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": RSA_PUB}]})
    assert _keypairs.check_key_pair(client, "deploy", RSA_PUB) is False
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": RSA_PUB}]})
    assert _keypairs.check_key_pair(client, "deploy", None) is False  # by name alone, whatever key it holds


def test_import_sends_the_key_and_check_mode_sends_nothing(ec2_client):
    client, stub = ec2_client
    stub.add_response("import_key_pair", {"KeyName": "deploy"}, {"KeyName": "deploy", "PublicKeyMaterial": b"x y"})
    changes = Changes(False, client)
    assert _keypairs.import_key_pair(changes, "deploy", " x y\n") is True
    assert changes.actions == ["import key pair deploy"]
    planned = Changes(True, client)
    assert _keypairs.import_key_pair(planned, "deploy", ED_PUB) is False
    assert planned.actions == ["import key pair deploy"]


def test_a_duplicate_after_a_lost_answer_is_ours_when_it_holds_our_key(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("import_key_pair", "InternalError", "internal error", 500)
    stub.add_client_error("import_key_pair", "InvalidKeyPair.Duplicate", "The keypair 'deploy' already exists.")
    # Not visible at once to every call (eventual consistency): retried, as the key pair is this run's.
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "not yet", expected_params=KEY_QUERY)
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": ED_PUB}]}, KEY_QUERY)
    assert _keypairs.import_key_pair(Changes(False, client), "deploy", ED_PUB) is True
    stub.add_client_error("import_key_pair", "InvalidKeyPair.Duplicate", "The keypair 'deploy' already exists.")
    stub.add_response(
        "describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "f", "PublicKey": RSA_PUB}]}
    )
    with pytest.raises(
        TaskError, match=r"^public_key: key pair 'deploy' appeared meanwhile with another key \(fingerprint f\)"
    ):
        _keypairs.import_key_pair(Changes(False, client), "deploy", ED_PUB)


def test_drop_deletes_only_our_key_once_no_instance_uses_it(ec2_client):
    client, stub = ec2_client
    warnings = []
    # Another key under that name: kept.
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": RSA_PUB}]}, KEY_QUERY)
    _keypairs.drop_key_pair(Changes(False, client), "deploy", ED_PUB, [], warnings.append)
    # Ours, but used by an instance this task does not terminate: kept.
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": ED_PUB}]}, KEY_QUERY)
    users = reservations(instance("i-00000001", KeyName="deploy"), instance("i-00000009", KeyName="deploy"))
    stub.add_response("describe_instances", users, KEY_USERS)
    _keypairs.drop_key_pair(Changes(False, client), "deploy", ED_PUB, ["i-00000001"], warnings.append)
    assert warnings == [
        "key pair deploy kept: it holds another key than public_key",
        "key pair deploy kept: instances i-00000009 still use it",
    ]
    # Ours and used only by what this task terminates: deleted.
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": ED_PUB}]}, KEY_QUERY)
    stub.add_response("describe_instances", reservations(instance("i-00000001", KeyName="deploy")), KEY_USERS)
    stub.add_response("delete_key_pair", {}, {"KeyName": "deploy"})
    changes = Changes(False, client)
    _keypairs.drop_key_pair(changes, "deploy", ED_PUB, ["i-00000001"], warnings.append)
    assert changes.actions == ["delete key pair deploy"]
    # Gone already, or no public_key given (a key pair this task did not import): nothing to do.
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "no such key", expected_params=KEY_QUERY)
    _keypairs.drop_key_pair(Changes(False, client), "deploy", ED_PUB, [], warnings.append)
    _keypairs.drop_key_pair(Changes(False, client), "deploy", None, [], warnings.append)
    assert len(warnings) == 2
