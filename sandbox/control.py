"""The sandbox's control API on the API's own port (127.0.0.1 only; guests get 404): status, bounded fault
injection, chaos, other accounts' buckets. sandbox/README.md ("control") documents each path."""

from __future__ import annotations

import json

from .services.base import Answer, Moto

_JSON = [("Content-Type", "application/json")]


class Control:
    def __init__(self, core, moto: Moto):
        self.core = core
        self.moto = moto

    def answer(self, environ, raw: bytes) -> Answer:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        core = self.core
        if path == "/_sandbox/status":
            out = {
                "hosts": {i: {"state": h.state, "ip": h.ip, "region": h.region} for i, h in core.hosts.items()},
                "pending_images": sorted(core.pending_images),
                # Resources the API does not show yet (eventual consistency): ID -> seconds until it does.
                "hidden": core.strict.consistency.hidden_now(),
                "faults": core.faults.list(),
                "chaos": core.chaos.status(),
            }
        elif path == "/_sandbox/faults" and method == "POST":
            spec = json.loads(raw or b"{}")
            bad = self._bad_zone(spec.get("zone"))
            if bad:
                return _bad_request(bad)
            out = core.faults.add(spec)
        elif path == "/_sandbox/faults" and method == "DELETE":
            core.faults.clear()
            out = {"faults": []}
        elif path == "/_sandbox/faults":
            out = {"faults": core.faults.list()}
        elif path == "/_sandbox/foreign-buckets" and method == "POST":
            base = {k: v for k, v in environ.items() if k.startswith(("wsgi.", "SERVER_")) or k == "REMOTE_ADDR"}
            try:
                spec = json.loads(raw or b"{}")
                out = core.foreign_buckets.add(spec, lambda env, body: self.moto({**base, **env}, body))
            except (ValueError, TypeError) as exc:
                return _bad_request(str(exc))
        elif path == "/_sandbox/foreign-buckets":
            out = {"buckets": core.foreign_buckets.listed()}
        elif path == "/_sandbox/chaos" and method == "POST":
            try:
                out = core.chaos.configure(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                return _bad_request(str(exc))
        elif path == "/_sandbox/chaos" and method == "DELETE":
            out = core.chaos.off()
        elif path == "/_sandbox/chaos":
            out = core.chaos.status()
        else:
            return "404 Not Found", _JSON, b'{"error": "not found"}'
        return "200 OK", _JSON, json.dumps(out).encode()

    def _bad_zone(self, zone) -> str | None:
        if zone is None:
            return None
        region = str(zone)[:-1]
        try:
            known = self.core.zones(region)
        except Exception:  # an unknown region has no zones
            known = []
        if zone not in known:
            return f"unknown availability zone {zone!r} in a fault (known: {', '.join(known) or 'none in ' + region})"
        return None


def _bad_request(message: str) -> Answer:
    return "400 Bad Request", _JSON, json.dumps({"error": message}).encode()
