"""The sandbox's ACM hook and CA (no root, no sandbox): IAM resources of ACM actions, what it keeps of an imported
certificate, the chain GetCertificate answers, a certificate in use kept, the CA made once. The real HTTPS listener is
in test_https.py."""

from __future__ import annotations

import base64
import json

from sandbox import acm

ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0e7d2c7f-8353-4fc6-9603-f2d18b070c1b"


def environ(action: str) -> dict:
    return {"HTTP_X_AMZ_TARGET": f"CertificateManager.{action}"}


def moto(answer: dict, status: str = "200 OK"):
    calls = []

    def call(env, raw):
        calls.append(json.loads(raw))
        return status, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode()

    call.calls = calls
    return call


def test_acm_actions_are_authorized_on_the_certificate():
    new = json.dumps({"Certificate": "x", "PrivateKey": "y", "Tags": [{"Key": "Name", "Value": "lb"}]}).encode()
    assert acm.iam_requested("eu-west-1", "ImportCertificate", new) == [
        ("acm:ImportCertificate", "arn:aws:acm:eu-west-1:123456789012:certificate/*"),
        ("acm:AddTagsToCertificate", "arn:aws:acm:eu-west-1:123456789012:certificate/*"),
    ]
    again = json.dumps({"CertificateArn": ARN, "Certificate": "x", "PrivateKey": "y"}).encode()
    assert acm.iam_requested("us-east-1", "ImportCertificate", again) == [("acm:ImportCertificate", ARN)]
    named = json.dumps({"CertificateArn": ARN}).encode()
    assert acm.iam_requested("us-east-1", "DeleteCertificate", named) == [("acm:DeleteCertificate", ARN)]
    assert acm.iam_requested("us-east-1", "ListCertificates", b"{}") == [("acm:ListCertificates", "*")]


def test_import_keeps_what_haproxy_serves_and_get_answers_the_imported_chain(tmp_path):
    certs = acm.Certificates()
    pem = {k: f"-----BEGIN {k}-----\n{k}\n-----END {k}-----\n" for k in ("CERT", "CHAIN", "KEY")}
    request = {"Certificate": base64.b64encode(pem["CERT"].encode()).decode(),
               "CertificateChain": base64.b64encode(pem["CHAIN"].encode()).decode(),
               "PrivateKey": base64.b64encode(pem["KEY"].encode()).decode()}  # fmt: skip
    status, _headers, _body = certs.answer(environ("ImportCertificate"), json.dumps(request).encode(),
                                           moto({"CertificateArn": ARN}))  # fmt: skip
    assert status.startswith("200")
    assert certs.pem(ARN) == pem["CERT"] + pem["CHAIN"] + pem["KEY"]
    # moto adds a root of its own to the chain; ACM answers the chain that was imported.
    moto_answer = {"Certificate": pem["CERT"], "CertificateChain": pem["CHAIN"] + "-----BEGIN MOTO ROOT-----\n"}
    _status, _headers, body = certs.answer(environ("GetCertificate"), json.dumps({"CertificateArn": ARN}).encode(),
                                           moto(moto_answer))  # fmt: skip
    assert json.loads(body)["CertificateChain"] == pem["CHAIN"]


def test_a_certificate_a_listener_uses_is_not_deleted():
    certs = acm.Certificates()
    certs.pems[ARN] = "pem"
    certs.in_use = lambda arn: ["arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/lb/1"]
    call = moto({})
    status, _headers, body = certs.answer(environ("DeleteCertificate"), json.dumps({"CertificateArn": ARN}).encode(),
                                          call)  # fmt: skip
    assert status.startswith("400")
    assert json.loads(body)["__type"] == "ResourceInUseException"
    assert call.calls == []  # moto was not asked
    certs.in_use = lambda arn: []
    status, _headers, _body = certs.answer(environ("DeleteCertificate"), json.dumps({"CertificateArn": ARN}).encode(),
                                           call)  # fmt: skip
    assert status.startswith("200")
    assert certs.pem(ARN) is None


def test_the_ca_is_made_once_and_its_key_is_private(tmp_path):
    cert, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    assert acm.ensure_ca(cert, key) == cert
    first = cert.read_bytes()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    acm.ensure_ca(cert, key)
    assert cert.read_bytes() == first
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(first)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject.rfc4514_string() == f"CN={acm.CA_NAME}"
