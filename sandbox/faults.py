"""Fault injection for reliability tests: always off by default, always bounded in count and time.

Two kinds:

- ``Faults``: targeted. The next ``count`` calls of one action fail with one EC2 error
  (``POST /_sandbox/faults``).
- ``Chaos``: random. Each API request is, at seeded rates, throttled (``RequestLimitExceeded``,
  HTTP 503), failed with a 5xx (``InternalError`` 500 or ``Unavailable`` 503, EC2's error XML),
  dropped before moto acts (the connection closes, nothing happened), dropped after moto acted
  (the connection closes, the action happened: the client sees a connection error and retries), or
  delayed. Configured with ``SANDBOX_FAULTS`` (JSON) when the sandbox starts, or
  ``POST /_sandbox/chaos`` later; it turns itself off after ``max_faults`` injected faults or
  ``seconds`` of wall time, whichever comes first.

Requests the sandbox makes to itself (user agent ``INTERNAL_AGENT``) are never faulted.
"""

from __future__ import annotations

import random
import re
import threading
import time

INTERNAL_AGENT = "bakery-sandbox-internal"
ACCESS_KEY_RE = re.compile(r"Credential=([^/,\s]+)/")

MAX_COUNT = 1000
MAX_SECONDS = 600
CHAOS_MAX_FAULTS = 10000
CHAOS_MAX_SECONDS = 3600
CHAOS_MAX_LATENCY_MS = 5000

# Chaos kinds, in the order their rates are stacked on one random draw.
KINDS = ("throttle", "error", "drop_before", "drop_after")
ERRORS = {
    "throttle": ("RequestLimitExceeded", "Request limit exceeded.", 503),
    "error500": ("InternalError", "An internal error has occurred.", 500),
    "error503": ("Unavailable", "The server is overloaded and cannot handle the request.", 503),
}


class Faults:
    """Injected API errors, always bounded: at most `count` requests and `seconds` of wall time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[dict] = []

    def add(self, spec: dict) -> dict:
        count = max(1, min(int(spec.get("count", 1)), MAX_COUNT))
        seconds = max(0.1, min(float(spec.get("seconds", 60)), MAX_SECONDS))
        fault = {
            "action": spec.get("action", "*"),
            "code": spec.get("code", "RequestLimitExceeded"),
            "status": int(spec.get("status", 503)),
            "message": spec.get("message", ""),
            "access_key": spec.get("access_key") or None,  # only requests signed with it, when given
            "zone": spec.get("zone") or None,  # RunInstances into this zone only (checked by the caller)
            "remaining": count,
            "until": time.time() + seconds,
        }
        with self.lock:
            self.items.append(fault)
        return fault

    def take(self, action: str, access_key: str | None = None) -> dict | None:
        if not self.items:
            return None
        now = time.time()
        with self.lock:
            self.items = [f for f in self.items if f["remaining"] > 0 and f["until"] > now]
            for f in self.items:
                if f["zone"] is None and f["action"] in ("*", action) and f["access_key"] in (None, access_key):
                    f["remaining"] -= 1
                    return dict(f)
        return None

    def take_zone(self, zone: str) -> dict | None:
        """A fault for RunInstances into ``zone`` (e.g. InsufficientInstanceCapacity), counted like the others."""
        if not self.items:
            return None
        now = time.time()
        with self.lock:
            for f in self.items:
                if f["zone"] == zone and f["remaining"] > 0 and f["until"] > now:
                    f["remaining"] -= 1
                    return dict(f)
        return None

    def list(self) -> list[dict]:
        now = time.time()
        with self.lock:
            return [f for f in self.items if f["remaining"] > 0 and f["until"] > now]

    def clear(self) -> None:
        with self.lock:
            self.items = []


def _rate(spec: dict, key: str) -> float:
    value = float(spec.get(key, 0) or 0)
    if not 0 <= value <= 1:
        raise ValueError(f"{key}: {value} is not a rate between 0 and 1")
    return value


def parse_chaos(spec: dict) -> dict:
    """Check and normalise a chaos spec; raise ValueError naming the first bad value."""
    known = {
        "seed",
        *KINDS,
        "latency",
        "latency_ms",
        "max_faults",
        "seconds",
        "actions",
        "access_key",
    }
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown chaos option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    rates = {kind: _rate(spec, kind) for kind in KINDS}
    if sum(rates.values()) > 1:
        raise ValueError(f"rates {rates} add up to more than 1")
    latency_ms = int(spec.get("latency_ms", 0) or 0)
    if not 0 <= latency_ms <= CHAOS_MAX_LATENCY_MS:
        raise ValueError(f"latency_ms: {latency_ms} is not between 0 and {CHAOS_MAX_LATENCY_MS}")
    max_faults = int(spec.get("max_faults", 2000))
    if not 1 <= max_faults <= CHAOS_MAX_FAULTS:
        raise ValueError(f"max_faults: {max_faults} is not between 1 and {CHAOS_MAX_FAULTS}")
    seconds = float(spec.get("seconds", 600))
    if not 0 < seconds <= CHAOS_MAX_SECONDS:
        raise ValueError(f"seconds: {seconds} is not between 0 and {CHAOS_MAX_SECONDS}")
    actions = spec.get("actions") or ["*"]
    if isinstance(actions, str):
        actions = [actions]
    return {
        "seed": int(spec.get("seed", 0)),
        **rates,
        "latency": _rate(spec, "latency"),
        "latency_ms": latency_ms,
        "max_faults": max_faults,
        "seconds": seconds,
        "actions": sorted(actions),
        "access_key": spec.get("access_key") or None,
    }


class Chaos:
    """Random, seeded, bounded faults on every API request (see the module docstring)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spec: dict | None = None
        self.until = 0.0
        self.rng = random.Random(0)  # noqa: S311 - reproducible faults, not security
        self.stats = self._empty_stats()

    @staticmethod
    def _empty_stats() -> dict:
        return {"requests": 0, "faults": 0, "kinds": {}, "by_action": {}, "latency_seconds": 0.0}

    def configure(self, spec: dict) -> dict:
        parsed = parse_chaos(spec)
        with self.lock:
            self.spec = parsed
            self.until = time.time() + parsed["seconds"]
            self.rng = random.Random(parsed["seed"])  # noqa: S311 - reproducible faults, not security
            self.stats = self._empty_stats()
        return self.status()

    def off(self) -> dict:
        with self.lock:
            self.spec = None
        return self.status()

    def _active(self, now: float) -> bool:
        spec = self.spec
        if spec is None:
            return False
        if now >= self.until or self.stats["faults"] >= spec["max_faults"]:
            self.spec = None  # auto-off; the stats stay readable
            return False
        return True

    def draw(self, action: str, access_key: str | None) -> tuple[str | None, float]:
        """``(kind or None, seconds of added latency)`` for one request."""
        if self.spec is None:
            return None, 0.0
        with self.lock:
            if not self._active(time.time()):
                return None, 0.0
            spec = self.spec
            if spec["access_key"] and access_key != spec["access_key"]:
                return None, 0.0
            if "*" not in spec["actions"] and action not in spec["actions"]:
                return None, 0.0
            self.stats["requests"] += 1
            # Draws happen in request order with one generator, so a seed gives one sequence of outcomes.
            roll, latency_roll, latency_frac, split = (self.rng.random() for _ in range(4))
            delay = 0.0
            if spec["latency"] and latency_roll < spec["latency"]:
                delay = latency_frac * spec["latency_ms"] / 1000
                self.stats["latency_seconds"] += delay
                self._count(action, "latency")
            kind, edge = None, 0.0
            for name in KINDS:
                edge += spec[name]
                if roll < edge:
                    kind = name
                    break
            if kind == "error":
                kind = "error500" if split < 0.5 else "error503"
            if kind:
                self.stats["faults"] += 1
                self._count(action, kind)
            return kind, delay

    def _count(self, action: str, kind: str) -> None:
        self.stats["kinds"][kind] = self.stats["kinds"].get(kind, 0) + 1
        per = self.stats["by_action"].setdefault(action, {})
        per[kind] = per.get(kind, 0) + 1

    def status(self) -> dict:
        with self.lock:
            active = self._active(time.time())
            return {
                "active": active,
                "spec": dict(self.spec) if self.spec else None,
                "seconds_left": round(max(0.0, self.until - time.time()), 1) if active else 0,
                "stats": {
                    **self.stats,
                    "kinds": dict(self.stats["kinds"]),
                    "by_action": {a: dict(k) for a, k in self.stats["by_action"].items()},
                    "latency_seconds": round(self.stats["latency_seconds"], 3),
                },
            }


def access_key_of(environ: dict) -> str | None:
    m = ACCESS_KEY_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else None


def is_internal(environ: dict) -> bool:
    return INTERNAL_AGENT in environ.get("HTTP_USER_AGENT", "")
