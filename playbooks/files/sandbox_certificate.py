"""A certificate for the load balancer's name, signed by the sandbox's own CA (tasks/load_balancer.yml).

On the sandbox the flow's load balancer has no certificate from a public CA: this signs one for its name (an IP
address on the sandbox, a DNS name elsewhere) with the CA the sandbox made (``--ca`` names ``ca.pem``; its key
``ca.key`` is beside it). The certificate and its key are kept in ``<ca dir>/certs/`` and used again while they are
for that name, signed by that CA and valid for 30 days more, so that a rerun imports nothing new.

Prints JSON: the paths of the certificate, its chain (the CA) and the private key, and ``changed``.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 365
RENEW_DAYS = 30


def subject_names(name: str) -> list[x509.GeneralName]:
    try:
        return [x509.IPAddress(ipaddress.ip_address(name))]
    except ValueError:
        return [x509.DNSName(name)]


def still_good(cert_file: Path, key_file: Path, ca: x509.Certificate, name: str) -> bool:
    """The kept certificate is for ``name``, issued by ``ca`` and valid for RENEW_DAYS more."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        serialization.load_pem_private_key(key_file.read_bytes(), None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=RENEW_DAYS)
    return list(names) == subject_names(name) and cert.not_valid_after_utc > soon


def sign(ca: x509.Certificate, ca_key, name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
        .add_extension(x509.SubjectAlternativeName(subject_names(name)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ca", required=True, help="the sandbox's CA certificate (ca.pem; ca.key beside it)")
    parser.add_argument("--name", required=True, help="the load balancer's name (its DNS name or address)")
    args = parser.parse_args(argv)
    ca_file = Path(args.ca)
    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_file.with_name("ca.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        print(f"cannot read the sandbox's CA {ca_file} and its key: {exc}", file=sys.stderr)
        return 1
    kept = ca_file.parent / "certs"
    kept.mkdir(mode=0o700, exist_ok=True)
    cert_file, key_file = kept / f"{args.name}.pem", kept / f"{args.name}.key"
    changed = not still_good(cert_file, key_file, ca, args.name)
    if changed:
        cert_pem, key_pem = sign(ca, ca_key, args.name)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        cert_file.write_bytes(cert_pem)
    print(json.dumps({"certificate": str(cert_file), "private_key": str(key_file), "chain": str(ca_file),
                      "changed": changed}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
