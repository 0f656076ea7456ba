"""ACM (moto's) behind the middleware, and the sandbox's own certificate authority.

moto answers the ACM API (after IAM has checked it); this module keeps what a load balancer needs to terminate TLS
with an imported certificate: the certificate, its chain and its private key, as the ``ImportCertificate`` request
gave them, by certificate ARN. ``DeleteCertificate`` of a certificate a listener uses is refused
(``ResourceInUseException``), as ACM does. ``GetCertificate`` of an imported certificate answers the chain that was
imported (moto appends a root CA of its own, which makes every comparison with the imported chain differ).

The sandbox's certificate authority (``ca.pem``, its key ``ca.key``, beside the env file in ``.build/sandbox/``) is
made once with ``cryptography`` and kept across sandboxes, so that a client trusts it once (``curl --cacert``).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from . import config

TARGET = "CertificateManager."
_JSON = [("Content-Type", "application/x-amz-json-1.1")]
CA_FILE = config.ENV_FILE.with_name("ca.pem")
CA_KEY_FILE = config.ENV_FILE.with_name("ca.key")
CA_NAME = "bakery.ec2 sandbox CA"
CA_DAYS = 3650


def is_acm(environ) -> bool:
    return environ.get("HTTP_X_AMZ_TARGET", "").startswith(TARGET)


def _pem_text(value) -> str:
    """A PEM field of an ACM JSON request: boto3 sends blobs base64-encoded."""
    if not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return str(value)


def iam_requested(region: str, action: str, raw: bytes) -> list[tuple[str, str]]:
    """ACM checks an action on the certificate it names (``arn:aws:acm:R:A:certificate/ID``); listing on ``*``;
    importing a new certificate on ``certificate/*``, and tags given with it need ``acm:AddTagsToCertificate``."""
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        doc = {}
    arn = doc.get("CertificateArn") if isinstance(doc, dict) else None
    if action == "ImportCertificate":
        arn = arn or f"arn:aws:acm:{region}:{config.ACCOUNT_ID}:certificate/*"
        return [(f"acm:{action}", arn), *([("acm:AddTagsToCertificate", arn)] if doc.get("Tags") else [])]
    return [(f"acm:{action}", arn or "*")]


class Certificates:
    """Imported certificates with their keys (what HAProxy serves), by ARN; ``in_use`` names a certificate's users."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pems: dict[str, str] = {}  # ARN -> certificate, chain and private key, PEM
        self.chains: dict[str, str] = {}  # ARN -> the chain imported with it ("" for none)
        self.in_use: Callable[[str], list[str]] = lambda arn: []

    def pem(self, arn: str) -> str | None:
        with self.lock:
            return self.pems.get(arn)

    def answer(self, environ, raw: bytes, call_moto):
        action = environ.get("HTTP_X_AMZ_TARGET", "")[len(TARGET) :]
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        if action == "DeleteCertificate":
            users = self.in_use(request.get("CertificateArn", ""))
            if users:
                body = {"__type": "ResourceInUseException",
                        "message": f"Certificate {request['CertificateArn']} in use by {', '.join(users)}"}  # fmt: skip
                return "400 Bad Request", _JSON, json.dumps(body).encode()
        status, headers, body = call_moto(environ, raw)
        if not status.startswith("200"):
            return status, headers, body
        if action == "ImportCertificate":
            arn = json.loads(body or b"{}").get("CertificateArn", "")
            pem = "".join(
                text if text.endswith("\n") else text + "\n"
                for text in (_pem_text(request.get(k)) for k in ("Certificate", "CertificateChain", "PrivateKey"))
                if text
            )
            with self.lock:
                self.pems[arn] = pem
                self.chains[arn] = _pem_text(request.get("CertificateChain"))
        elif action == "DeleteCertificate":
            with self.lock:
                self.pems.pop(request.get("CertificateArn", ""), None)
                self.chains.pop(request.get("CertificateArn", ""), None)
        elif action == "GetCertificate" and request.get("CertificateArn") in self.chains:
            reply = json.loads(body)
            chain = self.chains[request["CertificateArn"]]
            if chain:
                reply["CertificateChain"] = chain
            else:
                reply.pop("CertificateChain", None)
            body = json.dumps(reply).encode()
        return status, headers, body


# ---------------------------------------------------------------- the sandbox's certificate authority
def ensure_ca(cert_file: Path = CA_FILE, key_file: Path = CA_KEY_FILE) -> Path:
    """The sandbox's CA certificate, made once (an EC P-256 key, ten years); its key readable by root only."""
    if cert_file.exists() and key_file.exists():
        return cert_file
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                           "encipher_only", "decipher_only"), False)  # fmt: skip
    ca_usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    fd = os.open(key_file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    key_file.with_suffix(".tmp").rename(key_file)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file
