"""Latency of the employee directory's list and add on a sandbox host, on SQLite and on DynamoDB + S3.

    python bench/run.py --cases app_sandbox --app-requests 200     # case 8 of make bench (sandbox started if needed)

What it measures: the app as the flow deploys it (playbooks/launch.yml and configure.yml on a real sandbox host:
nginx, gunicorn, the webserver role), once with `flow_store: sqlite` and once with `flow_store: dynamodb`, where
the host reaches the sandbox's DynamoDB and S3 at its guest endpoint with the instance role's temporary
credentials from IMDSv2 (the sandbox checks the role's policy on every call). From the controller over HTTP, one
keep-alive connection: "list" is `GET /` (the first page of 24, sorted by name, with the count) over the
employees added first; "add" is `POST /api/employees` with the administrator's HTTP Basic credentials. p50 and
p95 of the calls of each, after 5 warm-up calls. The sandbox's DynamoDB and S3 are moto in one process on the
same 2 cores, so the DynamoDB figures show the shape of the app's calls plus the sandbox's own checks, not AWS's
latency.
"""

from __future__ import annotations

import base64
import http.client
import json
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
import cases
import harness
from app_store import percentiles, timed

REPO = HERE.parent
PLAYBOOKS = REPO / "playbooks"
INVENTORY = PLAYBOOKS / "inventory" / "bakery.instances.yml"
STORES = ("sqlite", "dynamodb")


def guest_endpoint() -> str:
    """BAKERY_SANDBOX_GUEST_ENDPOINT of the running sandbox (where its hosts reach DynamoDB and S3)."""
    text = (harness.SANDBOX_STATE / "env").read_text()
    pairs = dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines() if "=" in line)
    return pairs["BAKERY_SANDBOX_GUEST_ENDPOINT"]


class Directory:
    """HTTP calls to the app on one host, over one keep-alive connection."""

    def __init__(self, address: str, password: str):
        self.conn = http.client.HTTPConnection(address, 80, timeout=30)
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        self.auth = {"Authorization": f"Basic {token}"}

    def call(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> None:
        headers = dict(self.auth, **({"Content-Type": "application/json"} if body is not None else {}))
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        reply = self.conn.getresponse()
        reply.read()
        if reply.status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {reply.status}, expected {expect}")

    def add(self, number: int, tag: str) -> None:
        employee = {
            "name": f"Bench Person {tag} {number:05d}",
            "job_title": "Benchmark",
            "department": "Performance",
            "location": "Sandbox",
            "email": f"bench-{tag}-{number}@example.com",
        }
        self.call("POST", "/api/employees", employee, expect=201)


def measure(directory: Directory, requests: int, employees: int) -> dict:
    for number in range(employees):
        directory.add(number, "seed")
    listed = timed(lambda _n: directory.call("GET", "/"), requests)
    added = timed(lambda n: directory.add(n, "timed"), requests)
    return {"list": percentiles(listed), "add": percentiles(added)}


def source_address(flow_name: str) -> str:
    ec2 = cases.ec2_client(cases.SANDBOX_URL)
    filters = [
        {"Name": "tag:Name", "Values": [f"{flow_name}-source"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    found = [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]
    return found[0]["PrivateIpAddress"]


def case_app_sandbox(requests: int, employees: int, url: str) -> dict:
    """Rows of (store, operation, p50 ms, p95 ms), and the report's text."""
    tag = f"{int(time.time()) % 100000}"
    rows, setup = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-app-sandbox-") as tmp:
        workdir = Path(tmp)
        env = dict(harness.base_env(url, workdir), BENCH_SANDBOX="1", BAKERY_SANDBOX_GUEST_ENDPOINT=guest_endpoint())
        for store in STORES:
            flow_name = f"bench-app-{store}-{tag}"
            extra = {
                "flow_name": flow_name,
                "flow_store": store,
                "flow_key_path": str(workdir / f"key-{flow_name}"),
                "flow_hosts": f"flow_{flow_name.replace('-', '_')}:&role_source",
            }
            try:
                started = time.perf_counter()
                for playbook in ("launch.yml", "configure.yml"):
                    harness.run_playbook("ours", PLAYBOOKS / playbook, env, workdir, extra, INVENTORY, timeout=900)
                setup[store] = time.perf_counter() - started
                password = (workdir / f"key-{flow_name}.admin-password").read_text().strip()
                directory = Directory(source_address(flow_name), password)
                figures = measure(directory, requests, employees)
                rows += [(store, op, *figures[op]) for op in ("list", "add")]
                cases.log(
                    f"app on the sandbox, {store}: list p50 {figures['list'][0]:.1f} ms, "
                    f"add p50 {figures['add'][0]:.1f} ms"
                )
            finally:
                harness.run_playbook("ours", PLAYBOOKS / "teardown.yml", env, workdir, extra, INVENTORY, check=False)
    intro = (
        f"{requests} calls of each operation over HTTP from the controller, {employees} employees added first; "
        "one host per store, launched and configured by the flow's playbooks "
        f"({', '.join(f'{s} in {setup[s]:.0f} s' for s in STORES if s in setup)})."
    )
    table = [f"| {store} | {op} | {p50:.1f} | {p95:.1f} |" for store, op, p50, p95 in rows]
    text = "\n".join([intro, "", "| store | operation | p50 ms | p95 ms |", "| --- | --- | --- | --- |", *table])
    return {"rows": rows, "text": text, "targets": []}
