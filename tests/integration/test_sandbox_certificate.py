"""playbooks/files/sandbox_certificate.py: the load balancer's certificate signed by the sandbox's CA, kept and used
again while it is for that name, from that CA and valid long enough (so a rerun of the flow imports nothing)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the sandbox's CA, as the sandbox makes it
    sys.path.insert(0, str(ROOT))
from sandbox import acm

SCRIPT = ROOT / "playbooks" / "files" / "sandbox_certificate.py"


def sign(ca: Path, name: str) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--ca", str(ca), "--name", name], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_certificate_for_the_address_signed_by_the_ca_and_kept(tmp_path):
    ca = acm.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    first = sign(ca, "172.31.0.12")
    assert first["changed"] is True
    assert first["chain"] == str(ca)
    cert = x509.load_pem_x509_certificate(Path(first["certificate"]).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["172.31.0.12"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.read_bytes()))
    assert oct(Path(first["private_key"]).stat().st_mode & 0o777) == "0o600"
    # The key is the certificate's (a TLS server loads them as a pair).
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(first["certificate"], first["private_key"])
    again = sign(ca, "172.31.0.12")
    assert again == dict(first, changed=False)
    assert Path(first["certificate"]).read_bytes() == Path(again["certificate"]).read_bytes()
    other = sign(ca, "internal-lb.example.com")
    assert other["changed"] is True
    dns = x509.load_pem_x509_certificate(Path(other["certificate"]).read_bytes())
    assert dns.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["internal-lb.example.com"]


def test_a_new_ca_gets_a_new_certificate(tmp_path):
    ca = acm.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    sign(ca, "172.31.0.12")
    (tmp_path / "ca.pem").unlink()
    (tmp_path / "ca.key").unlink()
    acm.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    assert sign(ca, "172.31.0.12")["changed"] is True


def test_a_missing_ca_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--ca", str(tmp_path / "ca.pem"), "--name", "x"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"cannot read the sandbox's CA {tmp_path / 'ca.pem'}")
    assert "Traceback" not in proc.stderr
