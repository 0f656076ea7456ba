# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the key pair of ec2_launch (``key_name``, ``public_key``). Not a public API.

A key pair is checked before anything changes, imported from ``public_key`` when missing (never overwritten),
and deleted with ``state: absent`` once no instance uses it. OpenSSH public keys are read by ``cryptography``
(a dependency of ansible-core); the fingerprints are the ones EC2 shows.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError, not_found
from ansible_collections.bakery.ec2.plugins.module_utils._instances import instance_ids_with

try:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

KEY_TYPES = ("ssh-rsa", "ssh-ed25519")
# NotFound code of a key pair, retried only right after this run imported it (eventual consistency).
KEY_NOT_FOUND = ("InvalidKeyPair.NotFound",)


# --- public keys and fingerprints -------------------------------------------------------------------


def load_public_key(text: object) -> rsa.RSAPublicKey | ed25519.Ed25519PublicKey:
    """The key of an OpenSSH ``ssh-rsa`` or ``ssh-ed25519`` public key line; ValueError in one line if not one."""
    fields = str(text).strip().split()
    if len(fields) >= 2 and fields[0] in KEY_TYPES:
        try:
            key = serialization.load_ssh_public_key(" ".join(fields[:2]).encode("utf-8"))
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
            return key
    raise ValueError("public_key: not an OpenSSH ssh-rsa or ssh-ed25519 public key (the one line of a .pub file)")


def public_key_der(key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of the key, which EC2 hashes for the fingerprint of imported keys."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ssh_blob(key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> bytes:
    """The key in SSH wire format (the base64 field of a .pub line, decoded), which ``ssh-keygen -l`` hashes."""
    return base64.b64decode(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
    )


def normalise_fingerprint(value: object) -> str:
    text = str(value).strip()
    for prefix in ("SHA256:", "MD5:"):
        if text.upper().startswith(prefix):
            text = text[len(prefix) :]
    if ":" in text:
        return text.replace(":", "").lower()
    return text.rstrip("=")


def key_fingerprints(key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> set[str]:
    """Every form in which an EC2-like endpoint shows the fingerprint of this imported public key.

    AWS: MD5 of the DER public key for RSA, base64 SHA-256 of the key for ed25519 (as ``ssh-keygen -l``).
    moto uses SHA-256 of the DER key for ed25519. ``ssh-keygen -E md5`` style is accepted too.
    """
    der, blob = public_key_der(key), ssh_blob(key)
    return {
        hashlib.md5(der).hexdigest(),  # noqa: S324 - EC2's fingerprint format, not a security use
        hashlib.sha256(der).hexdigest(),
        hashlib.md5(blob).hexdigest(),  # noqa: S324
        base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    }


def same_public_key(key_pair: dict[str, Any], public_key: str) -> bool:
    """Whether the existing ``key_pair`` (DescribeKeyPairs entry) holds ``public_key``."""
    key = load_public_key(public_key)
    if key_pair.get("PublicKey"):
        try:
            return public_key_der(load_public_key(key_pair["PublicKey"])) == public_key_der(key)
        except ValueError:
            pass
    return normalise_fingerprint(key_pair.get("KeyFingerprint", "")) in key_fingerprints(key)


# --- the key pair in EC2 ----------------------------------------------------------------------------


def find_key(client: AwsClient, key_name: str) -> dict[str, Any] | None:
    """The DescribeKeyPairs entry of ``key_name`` (with its public key), or None."""
    pairs = not_found(
        lambda: client.call("describe_key_pairs", KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"],
        KEY_NOT_FOUND,
    )
    return pairs[0] if pairs else None


def check_key_pair(client: AwsClient, key_name: str | None, public_key: str | None) -> bool:
    """Before anything changes: whether the key pair must be imported; TaskError when it cannot be used."""
    if not key_name:
        return False
    pair = find_key(client, key_name)
    if pair is None and public_key is None:
        raise TaskError(f"key_name: key pair {key_name!r} not found in {client.region}")
    if pair is not None and public_key is not None and not same_public_key(pair, public_key):
        raise TaskError(
            f"public_key: key pair {key_name!r} exists with another key "
            f"(fingerprint {pair.get('KeyFingerprint')}); it is never overwritten"
        )
    return pair is None


def import_key_pair(changes: Changes, key_name: str, public_key: str) -> bool:
    """Import the key pair; return whether EC2 now has a pair it may not show everywhere yet (not in check mode).

    ``InvalidKeyPair.Duplicate`` after a lost answer (or a race) counts as done when the pair holds our key.
    """
    client = changes.client
    try:
        changes.act(
            f"import key pair {key_name}",
            "import_key_pair",
            KeyName=key_name,
            PublicKeyMaterial=public_key.strip().encode("utf-8"),
        )
    except AwsError as err:
        if err.code != "InvalidKeyPair.Duplicate":
            raise
        pair = client.call_created("describe_key_pairs", KEY_NOT_FOUND, KeyNames=[key_name], IncludePublicKey=True)[
            "KeyPairs"
        ][0]
        if not same_public_key(pair, public_key):
            raise TaskError(
                f"public_key: key pair {key_name!r} appeared meanwhile with another key "
                f"(fingerprint {pair.get('KeyFingerprint')}); it is never overwritten"
            ) from None
    return not changes.check_mode


def drop_key_pair(
    changes: Changes,
    key_name: str | None,
    public_key: str | None,
    terminated: Iterable[str],
    warn: Callable[[str], None],
) -> None:
    """With ``state: absent`` and ``public_key``: delete the key pair this task imports, once unused.

    Only a key pair holding exactly ``public_key`` is deleted, so a key of the same name made by someone else
    is left alone; so is one that any instance still uses, except those in ``terminated`` (in check mode the
    instances the task would terminate still run).
    """
    if not (key_name and public_key):
        return
    pair = find_key(changes.client, key_name)
    if pair is None:
        return
    if not same_public_key(pair, public_key):
        warn(f"key pair {key_name} kept: it holds another key than public_key")
        return
    users = instance_ids_with(changes.client, "key-name", key_name) - set(terminated)
    if users:
        warn(f"key pair {key_name} kept: instances {', '.join(sorted(users))} still use it")
        return
    changes.act(f"delete key pair {key_name}", "delete_key_pair", KeyName=key_name)
