"""What a request is to the services (:class:`Request`), the base of every service (:class:`Service`) and
the error formats of the protocols (EC2, Query, JSON, S3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .. import config
from ..errors import query_error, reason
from ..faults import access_key_of, is_internal

Answer = tuple[str, list, bytes]  # WSGI status line, headers, body
Moto = Callable[[dict, bytes], Answer]

READ_ACTIONS = ("Describe", "Get", "List")
_AUDITED_RE = re.compile(r"^(?:i|vol|sg|ami|snap)-[0-9a-f]+$")


@dataclass
class Request:
    """One API request as the services see it (the body is read once, here)."""

    environ: dict
    raw: bytes
    service: str  # the credential scope's service name: "ec2", "elasticloadbalancing", "s3", "dynamodb", ...
    region: str | None  # the credential scope's region; None when the request is not signed
    action: str  # the Query protocol's Action, or the JSON protocol's operation (after the X-Amz-Target's dot)
    params: dict  # the Query protocol's parameters; empty for JSON and S3 requests
    internal: bool  # the sandbox's own request (acting as AWS on a caller's behalf)

    @property
    def method(self) -> str:
        return self.environ.get("REQUEST_METHOD", "POST")

    @property
    def target(self) -> str:
        return self.environ.get("HTTP_X_AMZ_TARGET", "")

    @property
    def caller_key(self) -> str | None:
        return access_key_of(self.environ)


def parse(environ: dict, raw: bytes) -> Request:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.partition("Credential=")[2].partition(",")[0].split("/")  # KEY/DATE/REGION/SERVICE/aws4_request
    service = scope[3] if len(scope) > 3 else ""
    region = scope[2] if len(scope) > 2 and scope[2] else None
    target = environ.get("HTTP_X_AMZ_TARGET")
    form = target is None and service != "s3"  # S3 bodies are objects, not parameters
    params = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)) if form else {}
    action = target.rpartition(".")[2] if target else params.get("Action", "")
    return Request(environ, raw, service, region, action, params, is_internal(environ))


class Service:
    """A service that moto answers as it is: every request its own, checked on ``*``, refused in Query XML."""

    name = ""  # the credential scope's service name
    target_prefix = ""  # the X-Amz-Target prefix, for services recognised by it (JSON protocols)
    takes_faults = False  # injected faults and chaos (sandbox/faults.py) apply to its requests
    audited = False  # its changing calls get a line in the sandbox's log (as CloudTrail records them)

    def __init__(self, core, moto: Moto):
        self.core = core  # the state the services share (sandbox/core.py)
        self.moto = moto  # moto's answer to a request: moto(environ, raw)

    def owns(self, req: Request) -> bool:
        if self.target_prefix:
            return req.target.startswith(self.target_prefix)
        return bool(self.name) and req.service == self.name

    def requested(self, req: Request) -> list[tuple[str, str]]:
        """The (IAM action, resource ARN) pairs the request needs; ``*`` where no resource is named."""
        return [(f"{req.service}:{req.action}", "*")]

    def refusal(self, req: Request) -> Answer | None:
        """The sandbox's strictness: AWS's refusal of a request moto would accept, or None."""
        return None

    def answer(self, req: Request) -> Answer:
        return self.moto(req.environ, req.raw)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        """The service's refusal in its own shape (``req``: the request refused, where the shape depends on it)."""
        return answer_of(*query_error(code, message, status))

    def audit_ids(self, req: Request) -> list[str]:
        """The resources a changing call acts on, for its audit line."""
        return sorted({v for k, v in req.params.items() if k != "Action" and _AUDITED_RE.match(v)})


def answer_of(status: int, body: bytes, content_type: str = "text/xml") -> Answer:
    """An answer from a status code and a body (the shape the sandbox's own refusals take)."""
    return f"{status} {reason(status)}", [("Content-Type", content_type)], body


def region_of(req: Request) -> str:
    return req.region or config.REGION
