"""What every benchmark case shares: a counting proxy, a sandbox watcher, timed playbook runs, statistics.

- ``CountingProxy``: a reverse proxy on 127.0.0.1 in front of an EC2 endpoint (moto or the sandbox). It forwards
  each request unchanged and counts it by EC2 action name (the ``Action`` field of the Query request), so the API
  calls of a run are counted at the endpoint, whatever the client does (retries included).
- ``Watcher``: polls the sandbox's ``/_sandbox/status`` every 50 ms (directly, not through the proxy) and records
  when each host first reads ``running`` and when each image leaves ``pending``: the moment the state was reached,
  to compare with the moment the task returned.
- ``run_playbook``: ``ansible-playbook`` with the ``bench_timer`` callback (bench/callback_plugins), which writes
  each task's start and end (epoch seconds) and its result flags to a JSON-lines file.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import statistics
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = REPO / ".venv" / "bin"
BENCH_VENV = REPO / ".venv-bench" / "bin"
COLLECTIONS = REPO / ".build" / "collections"
READ_PREFIXES = ("Describe", "Get", "List")
# Smoke mode without .venv-bench: the peer's side runs our playbooks and modules (see bench/run.py).
STAND_IN = False


def is_read(action: str) -> bool:
    return action.startswith(READ_PREFIXES)


class CountingProxy:
    """Forward every request to ``upstream``; count requests by EC2 action. Binds 127.0.0.1 only."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"upstream {upstream} is not on 127.0.0.1")
        self.upstream = (parts.hostname, parts.port or 80)
        self.lock = threading.Lock()
        self.calls: list[tuple[float, str, float]] = []  # (sent at, action, seconds the endpoint took)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or ["?"])[0]
                if action == "?" and self.headers.get("X-Amz-Target"):  # JSON protocols (SSM): Service.Action
                    action = self.headers["X-Amz-Target"].rsplit(".", 1)[-1]
                if self.command == "GET" and "?" in self.path:
                    action = (parse_qs(self.path.split("?", 1)[1]).get("Action") or [action])[0]
                sent = time.time()
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=900)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                with proxy.lock:
                    proxy.calls.append((sent, action, time.time() - sent))
                self.send_response(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def mark(self) -> int:
        with self.lock:
            return len(self.calls)

    def counts(self, since: int = 0) -> dict[str, int]:
        with self.lock:
            calls = self.calls[since:]
        out: dict[str, int] = {}
        for _t, action, _s in calls:
            out[action] = out.get(action, 0) + 1
        return dict(sorted(out.items()))

    def answered(self, action: str, since: int = 0) -> float | None:
        """When the endpoint finished answering the last ``action`` call since ``since``."""
        with self.lock:
            ends = [t + s for t, a, s in self.calls[since:] if a == action]
        return max(ends) if ends else None

    def endpoint_seconds(self, since: int = 0) -> float:
        """Seconds the endpoint spent answering the calls since ``since`` (their sum)."""
        with self.lock:
            return sum(s for _t, _a, s in self.calls[since:])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Watcher:
    """Record when sandbox hosts first read ``running``, images leave ``pending``, and when the API shows them.

    ``visible``: when a resource the sandbox hid at first (its eventual-consistency window) is shown by the API;
    a resource never seen hidden is in no entry (shown at once). 50 ms resolution.
    """

    def __init__(self, endpoint: str, period: float = 0.05):
        self.url = endpoint.rstrip("/") + "/_sandbox/status"
        self.period = period
        self.running: dict[str, float] = {}
        self.pending_seen: set[str] = set()
        self.available: dict[str, float] = {}
        self.visible: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def status(self) -> dict:
        with urllib.request.urlopen(self.url, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
            return json.load(resp)

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                status = self.status()
            except OSError:
                time.sleep(self.period)
                continue
            now = time.time()
            for rid, left in status.get("hidden", {}).items():
                self.visible[rid] = now + left
            for iid, host in status["hosts"].items():
                if host["state"] == "running" and iid not in self.running:
                    self.running[iid] = now
            pending = set(status["pending_images"])
            for image in self.pending_seen - pending:
                self.available.setdefault(image, now)
            self.pending_seen |= pending
            time.sleep(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stop_event.set()
        self.thread.join(timeout=5)

    def reached(self, seen: float, resource_id: str) -> float:
        """When a caller could first read a state the host or image reached at ``seen``: not before the API shows it."""
        return max(seen, self.visible.get(resource_id, 0.0))


def base_env(endpoint: str, workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="AKIABENCH",
        AWS_SECRET_ACCESS_KEY="bench-secret",  # noqa: S106 - moto and the sandbox check nothing
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
        ANSIBLE_HOME=str(workdir / "home"),
        ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_timer",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),  # the peer's flow uses our webserver role by its short name
    )
    return env


def contender_env(env: dict, who: str) -> dict:
    """Ours sees only this checkout's collection; the peer only the ``ansible`` package's collections.

    On the sandbox (IAM enforced) ours runs as the least-privilege user; the peer, whose permissions
    docs/iam-policy.json does not list, as the sandbox's administrator.
    """
    ours = who == "ours" or STAND_IN
    collections = str(COLLECTIONS) if ours else str(BENCH_VENV.parent / "nonexistent")
    keys = sandbox_keys(admin=not ours) if env.get("BENCH_SANDBOX") else {}
    return dict(env, ANSIBLE_COLLECTIONS_PATH=collections, **keys)


SANDBOX_STATE = Path("/var/lib/bakery-sandbox")


def sandbox_keys(admin: bool = False) -> dict:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of the running sandbox's least-privilege user (or admin), and
    BAKERY_SANDBOX_CA (the CA that signs the flow's load balancer certificate there)."""
    text = (SANDBOX_STATE / ("admin.env" if admin else "env")).read_text()
    pairs = dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BAKERY_SANDBOX_CA")}


def ansible_bin(who: str, tool: str = "ansible-playbook") -> str:
    return str((VENV if who == "ours" or STAND_IN else BENCH_VENV) / tool)


def book(who: str, ours: Path, peer: Path) -> Path:
    """The playbook of ``who``; our playbook for the peer's stand-in."""
    return ours if who == "ours" or STAND_IN else peer


class PlaybookRun:
    def __init__(self, wall, rc, tasks, output):
        self.wall, self.rc, self.tasks, self.output = wall, rc, tasks, output

    def task(self, name: str) -> dict:
        """The last record of the task whose name is ``name``."""
        found = [t for t in self.tasks if t["task"] == name]
        if not found:
            raise RuntimeError(f"task {name!r} did not run; output:\n{self.output[-3000:]}")
        return found[-1]


def run_playbook(
    who, playbook, env, workdir, extra_vars=None, inventory=None, timeout=900, check=True, syntax_only=False
):
    """Run ``ansible-playbook`` of ``who`` (ours/peer); return wall seconds, rc, task records, output."""
    timer_file = workdir / f"timer-{time.monotonic_ns()}.jsonl"
    cmd = [ansible_bin(who), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if syntax_only:
        cmd.append("--syntax-check")
    run_env = dict(contender_env(env, who), BENCH_TIMER_FILE=str(timer_file))
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    tasks = [json.loads(line) for line in timer_file.read_text().splitlines()] if timer_file.exists() else []
    output = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{output[-4000:]}")
    return PlaybookRun(wall, proc.returncode, tasks, output)


def summary(values):
    """median, min, max."""
    return statistics.median(values), min(values), max(values)


def fmt_calls(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} ({', '.join(f'{k} {v}' for k, v in counts.items())})"


def only_reads(counts: dict[str, int]) -> bool:
    return all(is_read(action) for action in counts)
