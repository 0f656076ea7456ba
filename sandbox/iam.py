"""IAM, enforced on every signed request: SigV4 signature and identity policies, as AWS checks them.

At start the sandbox makes two IAM users through moto's IAM API: ``bakery-admin`` (every action;
the sandbox's own calls, tests and inspection) and ``bakery-least-privilege`` whose only policy is
``docs/iam-policy.json``. The middleware checks each request on the request as the client signed it
(before the sandbox rewrites anything) with moto's signature and policy code, and adds what moto
leaves out: tagging at creation (``TagSpecification``) needs ``ec2:CreateTags`` too. A denied EC2 call
is EC2's ``UnauthorizedOperation`` (HTTP 403) with one line naming the action and an encoded
authorization message that ``sts:DecodeAuthorizationMessage`` turns back into JSON.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
import zlib
from xml.sax.saxutils import escape

from . import config

POLICY_FILE = config.REPO_ROOT / "docs" / "iam-policy.json"
ADMIN_USER = "bakery-admin"
USER = "bakery-least-privilege"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

_ENC_PREFIX = "bks1."


def encode_message(arn: str, action: str) -> str:
    doc = {
        "allowed": False,
        "explicitDeny": False,
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {"principal": {"arn": arn}, "action": action, "resource": "*", "conditions": {"items": []}},
    }
    raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode())
    return _ENC_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_message(encoded: str) -> str | None:
    if not encoded.startswith(_ENC_PREFIX):
        return None
    body = encoded[len(_ENC_PREFIX) :]
    try:
        return zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()
    except (ValueError, zlib.error):
        return None


def unauthorized_message(arn: str, action: str) -> str:
    return (
        f"You are not authorized to perform this operation. User: {arn} is not authorized to perform: {action} "
        f"because no identity-based policy allows the {action} action. "
        f"Encoded authorization failure message: {encode_message(arn, action)}"
    )


def _headers(environ) -> dict[str, str]:
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["Content-Length"] = environ["CONTENT_LENGTH"]
    return out


class Denied(Exception):
    """A request IAM refuses: ``code``, ``message``, HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Gate:
    """Checks requests once ``enabled`` (after :meth:`bootstrap` made the users)."""

    def __init__(self):
        self.enabled = False
        self.lock = threading.Lock()
        self.credentials: dict[str, tuple[str, str]] = {}  # user -> (key id, secret)

    def bootstrap(self, endpoint: str, policy_text: str) -> dict[str, tuple[str, str]]:
        """Make the admin and the least-privilege user through the IAM API; return their keys."""
        import boto3
        from botocore.config import Config

        from .faults import INTERNAL_AGENT

        iam = boto3.client(
            "iam",
            region_name=config.REGION,
            endpoint_url=endpoint,
            aws_access_key_id=config.ACCESS_KEY,
            aws_secret_access_key=config.SECRET_KEY,
            config=Config(user_agent_extra=INTERNAL_AGENT),
        )
        for user, name, doc in (
            (ADMIN_USER, "AdministratorAccess", json.dumps(ADMIN_POLICY)),
            (USER, "bakery-ec2", policy_text),
        ):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=doc)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.credentials[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        self.enabled = True
        return dict(self.credentials)

    def check(self, environ, raw: bytes, params: dict) -> None:
        """Raise :class:`Denied` unless the request's signature is right and its policies allow it."""
        from moto.core.exceptions import _RESTError as RESTError
        from moto.iam.access_control import IAMRequest

        headers = _headers(environ)
        auth = headers.get("Authorization", "")
        service = auth.partition("Credential=")[2].partition(",")[0].split("/")[3:4]
        service = service[0] if service else ""
        target = headers.get("X-Amz-Target")
        action = target.rpartition(".")[2] if target else params.get("Action", "")
        if not auth.startswith("AWS4-HMAC-SHA256"):
            raise Denied("AuthFailure" if service == "ec2" else "MissingAuthenticationToken",
                         "AWS was not able to validate the provided access credentials", 401)  # fmt: skip
        path = environ.get("PATH_INFO", "/") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        try:
            request = IAMRequest(
                account_id=config.ACCOUNT_ID,
                method=environ.get("REQUEST_METHOD", "POST"),
                path=path,
                data=params,
                body=raw,
                headers=headers,
                action=action,
            )
            request.check_signature()
            actions = [action]
            if service == "ec2" and any(k.startswith("TagSpecification.") for k in params):
                actions.append("CreateTags")  # tagging at creation needs ec2:CreateTags, as on AWS
            for name in actions:
                request._action = f"{service}:{name}"
                try:
                    request.check_action_permitted("*")
                except RESTError as exc:
                    if exc.error_type != "AccessDenied":
                        raise
                    arn = request._access_key.arn
                    if service == "ec2":
                        raise Denied("UnauthorizedOperation", unauthorized_message(arn, f"ec2:{name}"), 403) from None
                    raise Denied("AccessDenied", f"User: {arn} is not authorized to perform: {service}:{name}",
                                 403) from None  # fmt: skip
        except RESTError as exc:
            raise Denied(exc.error_type, exc.message, exc.code) from None


def error_body(denied: Denied, service: str, json_protocol: bool) -> tuple[str, list, bytes]:
    status = f"{denied.status} Denied"
    if json_protocol:
        body = json.dumps({"__type": denied.code + ("Exception" if denied.code == "AccessDenied" else ""),
                           "message": denied.message}).encode()  # fmt: skip
        return status, [("Content-Type", "application/x-amz-json-1.1")], body
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(denied.code)}</Code><Message>{escape(denied.message)}"
            f"</Message></Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
        )
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(denied.code)}</Code>"
            f"<Message>{escape(denied.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
    return status, [("Content-Type", "text/xml")], body.encode()


def decode_response(params: dict) -> tuple[str, list, bytes]:
    """STS DecodeAuthorizationMessage (moto has none) for the messages this sandbox encodes."""
    decoded = decode_message(params.get("EncodedMessage", ""))
    if decoded is None:
        denied = Denied("InvalidAuthorizationMessageException", "The encoded message is not valid.", 400)
        return error_body(denied, "sts", False)
    body = (
        '<DecodeAuthorizationMessageResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<DecodeAuthorizationMessageResult><DecodedMessage>{escape(decoded)}</DecodedMessage>"
        f"</DecodeAuthorizationMessageResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
        "</ResponseMetadata></DecodeAuthorizationMessageResponse>"
    )
    return "200 OK", [("Content-Type", "text/xml")], body.encode()


def env_lines(endpoint: str, key: tuple[str, str]) -> list[str]:
    return [
        f"export AWS_ENDPOINT_URL={endpoint}",
        f"export AWS_ACCESS_KEY_ID={key[0]}",
        f"export AWS_SECRET_ACCESS_KEY={key[1]}",
        f"export AWS_DEFAULT_REGION={config.REGION}",
        f"export AWS_REGION={config.REGION}",
    ]
