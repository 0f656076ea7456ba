"""The sandbox's exception for users, and how each AWS protocol says no."""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape


class SandboxError(Exception):
    """A bad condition with a clear message saying what is wrong and what to do."""


def ec2_error(code: str, message: str, status: int = 400) -> tuple[int, bytes]:
    """EC2's error: ``<Response><Errors><Error>``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
    return status, body.encode()


def query_error(code: str, message: str, status: int = 400, xmlns: str = "") -> tuple[int, bytes]:
    """The Query protocol's error (IAM, STS, ELB, Auto Scaling): ``<ErrorResponse><Error>``."""
    ns = f' xmlns="{escape(xmlns)}"' if xmlns else ""
    body = (
        f"<ErrorResponse{ns}><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return status, body.encode()


# Error codes as the JSON protocols (DynamoDB, SSM, ACM, KMS) name them.
_JSON_CODES = {
    "AccessDenied": "AccessDeniedException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "ExpiredToken": "ExpiredTokenException",
}


def json_error(code: str, message: str, status: int = 400, content_type: str = "application/x-amz-json-1.1"):
    """The JSON protocols' error: ``{"__type": ..., "message": ...}``."""
    body = {"__type": "com.amazon.coral.service#" + _JSON_CODES.get(code, code), "message": message}
    return f"{status} {reason(status)}", [("Content-Type", content_type)], json.dumps(body).encode()


def s3_error(code: str, message: str, status: int = 400, method: str = "GET"):
    """S3's error: ``<Error>`` at the root; no body for HEAD."""
    if method == "HEAD":
        return f"{status} {reason(status)}", [("Content-Type", "application/xml")], b""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>bakery-sandbox</HostId></Error>"
    )
    return f"{status} {reason(status)}", [("Content-Type", "application/xml")], body.encode()


def reason(status: int) -> str:
    """An HTTP status's reason phrase (clients read the code; the phrase is for people reading logs)."""
    phrases = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip
    return phrases.get(status, "Error")
