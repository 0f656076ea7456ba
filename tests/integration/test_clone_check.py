"""playbooks/clone.yml's check of the clones: all in parallel, one deadline, every bad clone named.

The check's own tasks, taken from clone.yml as they are (they run playbooks/files/check_clones.py), run
against clones played by small HTTP servers on 127.0.0.x port 80 (root): one healthy, one answering for
another instance, one dead; and against 40 slow clones, checked at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLONE = ROOT / "playbooks" / "clone.yml"
CHECK = ROOT / "playbooks" / "files" / "check_clones.py"
BIN = ROOT / ".venv" / "bin"


def serve(ip: str, instance_id: str, delay: float = 0.0, employees: list | None = None, list_delay: float = 0.0):
    """/healthz answers for instance_id; /api/employees lists ``employees`` when given (after list_delay), else 404."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(delay + (list_delay if self.path == "/api/employees" else 0.0))
            found = self.path == "/healthz" or (self.path == "/api/employees" and employees is not None)
            if self.path == "/api/employees":
                body = json.dumps({"employees": [{"name": n} for n in employees or []]}).encode()
            else:
                body = json.dumps({"status": "ok", "instance_id": instance_id, "store": "sqlite"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer((ip, 80), Health)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def clones():
    """i-good answers for itself, i-wrong answers as another instance, i-dead has nothing on port 80."""
    if os.geteuid() != 0:
        pytest.skip("port 80 on 127.0.0.x needs root")
    servers = [serve("127.0.0.11", "i-good"), serve("127.0.0.12", "i-someone-else")]
    yield [
        {"instance_id": "i-good", "private_ip_address": "127.0.0.11"},
        {"instance_id": "i-wrong", "private_ip_address": "127.0.0.12"},
        {"instance_id": "i-dead", "private_ip_address": "127.0.0.13"},
    ]
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def check_playbook(tmp_path: Path, instances: list[dict]) -> Path:
    """clone.yml's check (its two tasks, as they are), given these clones; files/ as beside clone.yml."""
    plays = yaml.safe_load(CLONE.read_text())
    check = [
        t
        for t in plays[0]["tasks"]
        if t["name"].startswith(("Check that each clone serves the app", "Report every clone that does not answer"))
    ]
    assert len(check) == 2, [t["name"] for t in plays[0]["tasks"]]
    play = {
        "name": "Clones as ec2_launch returns them, then clone.yml's check",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROOT / "playbooks" / f) for f in plays[0]["vars_files"]],
        "tasks": [
            {"name": "Clones", "ansible.builtin.set_fact": {"flow_clones": {"instances": instances}}},
            *check,
        ],
    }
    (tmp_path / "files").symlink_to(ROOT / "playbooks" / "files")
    path = tmp_path / "check.yml"
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


def run(path: Path, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(path), "-e", f"flow_boot_timeout={timeout}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"),
    )
    return proc, time.monotonic() - t0


def test_every_clone_that_does_not_answer_is_named_after_one_bounded_wait(clones, tmp_path):
    proc, took = run(check_playbook(tmp_path, clones), timeout=8)
    assert proc.returncode != 0, proc.stdout
    out = " ".join(proc.stdout.split())
    assert "2 of 3 clone(s) do not serve the app within 8 s:" in out, proc.stdout
    assert "i-dead at 127.0.0.13: " in out
    assert 'i-wrong at 127.0.0.12: answered {"status": "ok", "instance_id": "i-someone-else", "store": "sqlite"}' in out
    assert "i-good at" not in out
    assert took < 8 + 30, f"the check took {took:.0f} s: the deadline is one for all clones"


def test_clones_that_all_answer_pass(clones, tmp_path):
    proc, _elapsed = run(check_playbook(tmp_path, clones[:1]), timeout=8)
    assert proc.returncode == 0, proc.stdout
    assert "failed=0" in proc.stdout


def test_many_clones_are_checked_at_once(tmp_path):
    """40 clones that each take 1 s to answer: checked together, not one after another (which would take 40 s)."""
    if os.geteuid() != 0:
        pytest.skip("port 80 on 127.0.0.x needs root")
    servers, instances = [], []
    for n in range(40):
        ip = f"127.0.1.{n + 1}"
        servers.append(serve(ip, f"i-slow{n}", delay=1.0))
        instances.append({"instance_id": f"i-slow{n}", "private_ip_address": ip})
    try:
        proc, took = run(check_playbook(tmp_path, instances), timeout=30)
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    assert proc.returncode == 0, proc.stdout
    assert "failed=0" in proc.stdout
    assert took < 25, f"the check of 40 clones answering in 1 s each took {took:.0f} s"


def test_a_clone_without_an_address_is_reported(tmp_path):
    proc, _elapsed = run(check_playbook(tmp_path, [{"instance_id": "i-noaddr", "private_ip_address": None}]), 8)
    assert proc.returncode != 0, proc.stdout
    assert "1 of 1 clone(s) do not serve the app within 8 s: i-noaddr at : no private address" in " ".join(
        proc.stdout.split()
    )


def test_the_flow_summary_fetches_every_clone_at_once_and_names_one_that_fails(tmp_path):
    """check_clones.py --fetch, as flow.yml's summary runs it: each clone's answers, and the one whose list fails."""
    if os.geteuid() != 0:
        pytest.skip("port 80 on 127.0.0.x needs root")
    servers = [
        serve("127.0.2.1", "i-one", delay=0.5, employees=["Ada Lovelace"]),
        serve("127.0.2.2", "i-two", delay=0.5, employees=["Ada Lovelace"]),
        serve("127.0.2.3", "i-nolist", delay=0.5),
    ]
    instances = [
        {"instance_id": "i-one", "private_ip_address": "127.0.2.1"},
        {"instance_id": "i-two", "private_ip_address": "127.0.2.2"},
        {"instance_id": "i-nolist", "private_ip_address": "127.0.2.3"},
    ]
    try:
        proc = subprocess.run(
            [str(BIN / "python"), str(CHECK), "--timeout", "10", "--fetch", "/api/employees"],
            input=json.dumps(instances),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # One request to each path per clone, all clones at once: 3 clones x 2 requests x 0.5 s one after another is 3 s.
    assert result["seconds"] < 2.5, result
    assert result["bad"] == [
        {"instance_id": "i-nolist", "address": "127.0.2.3", "reason": "/api/employees: HTTP 404 Not Found"}
    ]
    assert result["report"] == "i-nolist at 127.0.2.3: /api/employees: HTTP 404 Not Found"
    assert sorted(result["answers"]) == ["i-one", "i-two"]
    for iid in ("i-one", "i-two"):
        assert result["answers"][iid]["/healthz"] == {"status": "ok", "instance_id": iid, "store": "sqlite"}
        assert result["answers"][iid]["/api/employees"] == {"employees": [{"name": "Ada Lovelace"}]}


def test_a_fetch_path_must_start_with_a_slash():
    proc = subprocess.run(
        [str(BIN / "python"), str(CHECK), "--timeout", "1", "--fetch", "api/employees"],
        input="[]",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "check_clones: --fetch api/employees: not a path starting with /"


def test_a_fetch_that_does_not_answer_ends_with_the_deadline():
    """A clone healthy at once whose list hangs for 20 s: reported when the 2 s deadline passes, not 5 s after it."""
    if os.geteuid() != 0:
        pytest.skip("port 80 on 127.0.0.x needs root")
    srv = serve("127.0.2.9", "i-hangs", employees=["Ada Lovelace"], list_delay=20.0)
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "python"), str(CHECK), "--timeout", "2", "--fetch", "/api/employees"],
            input=json.dumps([{"instance_id": "i-hangs", "private_ip_address": "127.0.2.9"}]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - t0
    finally:
        srv.shutdown()
        srv.server_close()
    assert proc.returncode == 0, proc.stderr
    bad = json.loads(proc.stdout)["bad"]
    assert [(b["instance_id"], b["reason"].split(" (")[0]) for b in bad] == [("i-hangs", "/api/employees: no answer")]
    assert took < 2 + 2, f"took {took:.1f} s: the list's request outlived the deadline"


def test_a_canary_path_that_answers_404_is_reported_with_its_answer():
    """pipeline.yml's canaries: --path instead of /healthz; a path that is not found is reported with its status."""
    if os.geteuid() != 0:
        pytest.skip("port 80 on 127.0.0.x needs root")
    srv = serve("127.0.2.10", "i-canary", employees=["Ada Lovelace"])
    canary = json.dumps([{"instance_id": "i-canary", "private_ip_address": "127.0.2.10"}])
    try:
        answers = {}
        for path in ("/healthz", "/nowhere"):
            proc = subprocess.run(
                [str(BIN / "python"), str(CHECK), "--timeout", "2", "--path", path, "--fetch", "/api/employees"],
                input=canary, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            answers[path] = json.loads(proc.stdout)
    finally:
        srv.shutdown()
        srv.server_close()
    assert answers["/healthz"]["bad"] == []
    assert answers["/healthz"]["answers"]["i-canary"]["/api/employees"] == {"employees": [{"name": "Ada Lovelace"}]}
    assert answers["/nowhere"]["report"] == "i-canary at 127.0.2.10: HTTP 404 Not Found"
    bad = subprocess.run(
        [str(BIN / "python"), str(CHECK), "--timeout", "1", "--path", "healthz"],
        input="[]", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip() == "check_clones: --path healthz: not a path starting with /"
