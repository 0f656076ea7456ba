"""The WSGI middleware in front of moto: a short pipeline every request goes through.

control API (``/_sandbox/...``) -> the service the request is for (sandbox/services/) -> IAM (on the request as
signed, for the action and resources the service names) -> injected faults and chaos (services that take them) ->
the sandbox's strictness (AWS's refusals moto lacks) -> the service's answer (hooks around moto) -> the audit line.
Never an HTML 500: an unexpected failure is an ``InternalError`` in the service's own error shape.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
import traceback
from io import BytesIO

from . import iam
from .control import Control
from .faults import ERRORS, access_key_of
from .services import Registry
from .services.base import READ_ACTIONS, Answer, Request, Service, parse

log = logging.getLogger("sandbox")


class Middleware:
    """WSGI app wrapping moto's."""

    def __init__(self, app, core, services: list | None = None):
        self.app = app
        self.core = core
        self.services = Registry(core, self.moto, services)  # services: the classes, SERVICES unless given
        self.control = Control(core, self.moto)

    def __call__(self, environ, start_response):
        try:
            status, headers, body = self._handle(environ)
        except _Drop:
            # Fault injection: close the connection without an answer; the client sees a connection error.
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            start_response("500 Dropped", [("Content-Length", "0")])
            return []
        except Exception as exc:
            log.error("unexpected failure:\n%s", traceback.format_exc())
            status, headers, body = self.services.get("ec2").error(
                "InternalError", f"sandbox: {type(exc).__name__}: {exc}", 500
            )
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def moto(self, environ: dict, raw: bytes) -> Answer:
        """Moto's answer to a request with this body."""
        environ["wsgi.input"] = BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        captured = {}

        def sr(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, sr)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], body

    def _handle(self, environ) -> Answer:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self.control.answer(environ, raw)
        environ.pop("HTTP_X_MOTO_ACCOUNT_ID", None)  # moto's switch of account is the sandbox's alone
        if path.startswith("/moto-api"):
            return self.moto(environ, raw)
        req = parse(environ, raw)
        service = self.services.find(req)
        if self.core.gate.enabled:
            denied = self._authorize(req, service)
            if denied:
                return denied
        kind = None
        if service.takes_faults and not req.internal:
            kind, refused = self._faults(req, service)
            if refused:
                return refused
        answer = service.refusal(req) or service.answer(req)
        if service.audited and not req.action.startswith(READ_ACTIONS):
            audit(req.action, req.region or "-", req.params, answer, environ, req.internal, service.audit_ids(req))
        if kind == "drop_after":
            log.info("chaos: dropped the answer to %s (%s) after moto acted", req.action, answer[0])
            raise _Drop
        return answer

    def _authorize(self, req: Request, service: Service) -> Answer | None:
        """IAM on the request as signed: None if allowed, else the service's refusal."""
        try:
            self.core.gate.check(req.environ, req.raw, req.params, service.requested(req), internal=req.internal)
        except iam.Denied as denied:
            log.info("IAM: %s %s", denied.code, denied.message.split(" Encoded ")[0])
            return service.error(denied.code, denied.message, denied.status, req=req)
        return None

    def _faults(self, req: Request, service: Service) -> tuple[str | None, Answer | None]:
        """An injected fault's answer, or chaos's draw: (what chaos drew, the answer that replaces the service's)."""
        caller = req.caller_key
        fault = self.core.faults.take(req.action, caller)
        if fault:
            message = fault.get("message") or f"sandbox fault injected for {req.action}"
            return None, service.error(fault["code"], message, int(fault.get("status", 503)))
        kind, delay = self.core.chaos.draw(req.action, caller)
        if delay:
            time.sleep(delay)
        if kind in ERRORS:
            return kind, service.error(*ERRORS[kind])
        if kind == "drop_before":
            log.info("chaos: dropped %s before it reached moto", req.action)
            raise _Drop
        return kind, None


def audit(action: str, region: str, params: dict, answer: Answer, environ: dict, internal: bool, ids: list) -> None:
    """One log line per changing EC2, ELB or SSM call (as CloudTrail records it): what, on which resources, by whom,
    with which outcome. It is what tells afterwards which client changed what when two views of a resource differ."""
    status, _headers, body = answer
    outcome = status.split()[0]
    if not status.startswith("200"):
        code = re.search(rb"<Code>([^<]+)</Code>|\"__type\": *\"(?:[^\"#]*#)?([^\"]+)\"", body or b"")
        outcome += f" {(code.group(1) or code.group(2)).decode(errors='replace')}" if code else ""
    who = "sandbox" if internal else access_key_of(environ) or "-"
    log.info("call %s %s %s -> %s (by %s)", region, action, ",".join(ids) or "-", outcome, who)


class _Drop(Exception):
    """Raised to close the client's connection without an answer."""
