"""Instance metadata service on 169.254.169.254:80 (bridge side); hosts are told apart by source IP."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from . import config

if TYPE_CHECKING:
    from .core import Core


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, code: int, body: str = "", headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path.rstrip("/") != "/latest/api/token":
            return self._send(404, "Not Found")
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            return self._send(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        self.server.tokens[token] = (self.client_address[0], time.monotonic() + ttl)
        self._send(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def do_GET(self):
        src = self.client_address[0]
        info = self.server.core.metadata_for(src)
        if info is None:
            return self._send(404, "Not Found")
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is not None:
            owner = self.server.tokens.get(token)
            if not owner or owner[0] != src or owner[1] < time.monotonic():
                return self._send(401, "Unauthorized")
        elif info.get("_http_tokens") == "required":
            return self._send(401, "Unauthorized")
        if info.get("_http_endpoint") == "disabled":
            return self._send(403, "Forbidden")
        try:
            body = lookup(info, self.path.split("?")[0])
        except Exception as exc:  # e.g. the role went away: no credentials, as EC2 then has none
            self.server.core.log_imds_failure(self.path, exc)
            body = None
        if body is None:
            return self._send(404, "Not Found")
        self._send(200, body)


def lookup(info: dict, path: str) -> str | None:
    if path in ("/latest/user-data", "/latest/user-data/"):
        return info["user-data"] if info.get("user-data") else None
    if path.rstrip("/") == "/latest/dynamic/instance-identity/document":
        return json.dumps(info["_identity"], indent=2)
    if not path.startswith("/latest/meta-data"):
        return "meta-data\nuser-data\ndynamic\n" if path.rstrip("/") in ("/latest", "") else None
    key = path[len("/latest/meta-data") :].strip("/")
    tree = {k: v for k, v in info.items() if not k.startswith("_") and k != "user-data"}
    if key in tree:
        value = tree[key]
        return value() if callable(value) else value  # the role's credentials are made when asked for
    prefix = key + "/" if key else ""
    rest = [k[len(prefix) :] for k in tree if k.startswith(prefix)]
    children = sorted({r.split("/")[0] + ("/" if "/" in r else "") for r in rest})
    if key == "iam/security-credentials":  # the role's name alone: clients append it to this path
        return "\n".join(children) if children else None
    return "\n".join(children) + "\n" if children else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Every host of a fleet asks at about the same moment (its app's first request, the load balancer's first health
    # check). socketserver's backlog of 5 dropped the SYNs beyond it: a client's connection then waited for the
    # retransmission a second later, past the 1 s timeout SDKs and apps give this service, which answers at once
    # on EC2. A backlog as long as the kernel allows (net.core.somaxconn) keeps every one of them.
    request_queue_size = 4096
    tokens: dict
    core: Core


def start(core: Core) -> _Server:
    srv = _Server((config.IMDS_ADDR, 80), _Handler)
    srv.tokens = {}
    srv.core = core
    threading.Thread(target=srv.serve_forever, name="imds", daemon=True).start()
    return srv
