"""A steady probe through a load balancer: GET requests at a fixed rate from one thread, for a bounded time.

Used by the rollout proof (tests/sandbox/test_rollout.py) and the rollout benchmark (bench/rollout.py): while a
rollout runs, the probe sends ``rate`` requests a second to ``http://<address><path>`` (``https://`` with ``ca``, the
certificate authority it trusts, as the flow's load balancer serves by default) (a new connection each,
as independent clients would), and counts every answer that is not HTTP 200 (or not JSON with ``status: ok`` for
/healthz), every refused or reset connection and every timeout as a failure. It stops when asked, or by itself
after ``limit`` seconds (so a test that dies mid-way leaves no thread running for long).
"""

from __future__ import annotations

import http.client
import json
import ssl
import statistics
import threading
import time


class Probe(threading.Thread):
    def __init__(self, address: str, path: str = "/healthz", rate: float = 20.0, limit: float = 1200.0,
                 ca: str | None = None):  # fmt: skip
        super().__init__(daemon=True)
        self.address, self.path, self.period, self.limit = address, path, 1.0 / rate, limit
        self.tls = ssl.create_default_context(cafile=ca) if ca else None
        self.latencies: list[float] = []  # seconds, of the answered requests
        self.failures: list[tuple[float, str]] = []  # (seconds since start, what went wrong)
        self.instances: set[str] = set()  # instance IDs that answered /healthz
        self.halt = threading.Event()
        self.started_at = self.stopped_at = 0.0

    def one(self) -> None:
        start = time.perf_counter()
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.address, 443, timeout=5, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.address, 80, timeout=5)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            reply = conn.getresponse()
            body = reply.read()
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}: {body[:80]!r}")
            if self.path == "/healthz":
                answer = json.loads(body)
                if answer.get("status") != "ok":
                    raise RuntimeError(f"answered {body[:80]!r}")
                self.instances.add(answer.get("instance_id", "?"))
            self.latencies.append(time.perf_counter() - start)
        except (OSError, ValueError, RuntimeError, http.client.HTTPException) as err:
            self.failures.append((start - self.started_at, f"{type(err).__name__}: {err}"))
        finally:
            conn.close()

    def run(self) -> None:
        self.started_at = time.perf_counter()
        next_at = self.started_at
        while not self.halt.is_set() and time.perf_counter() - self.started_at < self.limit:
            self.one()
            next_at += self.period
            self.halt.wait(max(0.0, next_at - time.perf_counter()))
        self.stopped_at = time.perf_counter()

    def stop(self) -> dict:
        """Stop, and return the figures: requests, failures, rate, p50/p95/max latency in ms."""
        self.halt.set()
        self.join(timeout=10)
        return self.figures()

    def figures(self) -> dict:
        ms = sorted(s * 1000 for s in self.latencies)
        seconds = (self.stopped_at or time.perf_counter()) - self.started_at
        requests = len(self.latencies) + len(self.failures)
        return {
            "requests": requests,
            "failures": len(self.failures),
            "first_failures": [f"{t:.1f} s: {what}" for t, what in self.failures[:5]],
            "seconds": seconds,
            "rate": requests / seconds if seconds else 0.0,
            "p50_ms": statistics.median(ms) if ms else None,
            "p95_ms": statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else None,
            "max_ms": ms[-1] if ms else None,
            "instances": sorted(self.instances),
        }
