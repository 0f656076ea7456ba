"""Running the flow's playbooks on the sandbox for the reliability tests, and reading what the API holds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import BIN, REPO, base_env

sys.path.insert(0, str(REPO / "tests"))
from proctree import kill_tree

PLAYBOOKS = REPO / "playbooks"
INVENTORY = PLAYBOOKS / "inventory" / "bakery.instances.yml"
FIGURES_DIR = REPO / ".build" / "reliability"
LIVE = ("pending", "running", "stopping", "stopped", "shutting-down")


def flow_vars(name: str, workdir: Path, **extra) -> list[str]:
    """-e options giving the flow its own name, key and known_hosts under ``workdir``."""
    values = {
        "flow_name": name,
        "flow_key_path": str(workdir / f"{name}.key"),
        # configure only this flow's source instance (the sandbox may hold other flows)
        "flow_hosts": f"flow_{name.replace('-', '_')}:&role_source",
        **extra,
    }
    return ["-e", json.dumps(values)]


def sandbox_env(box, workdir: Path) -> dict:
    env = base_env(box.endpoint)
    # IAM is enforced there: the flow runs as the sandbox's least-privilege user (docs/iam-policy.json)
    user = box.env()
    env.update(AWS_ACCESS_KEY_ID=user["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=user["AWS_SECRET_ACCESS_KEY"])
    # Where the hosts reach the sandbox's DynamoDB and S3 (the flow's store, flow_store_endpoint_url), as make sandbox
    # exports it.
    env["BAKERY_SANDBOX_GUEST_ENDPOINT"] = box.guest_endpoint
    # The CA that signs the flow's load balancer certificate (flow_https), as make sandbox exports it.
    env["BAKERY_SANDBOX_CA"] = user["BAKERY_SANDBOX_CA"]
    # The flow also runs on the instances: let Ansible find their Python (the implicit localhost
    # runs on the controller's own Python, with boto3, anyway).
    env.pop("ANSIBLE_PYTHON_INTERPRETER")
    env["ANSIBLE_SSH_ARGS"] = "-o ControlMaster=no"
    env["HOME"] = str(workdir)  # the flow writes ~/.ssh/…; keep it in the test's directory
    return env


class Run:
    """One ansible-playbook run; optionally SIGKILLed during a task, with every process it started (its workers and
    their modules included: tests/proctree.py), as a crashed controller."""

    def __init__(self, playbook: str, env: dict, args: list[str], cwd: Path, inventory: bool = False):
        cmd = [str(BIN / "ansible-playbook")]
        if inventory:
            cmd += ["-i", str(INVENTORY)]
        self.cmd = [*cmd, str(PLAYBOOKS / playbook), *args]
        self.env, self.cwd = env, cwd
        self.lines: list[tuple[float, str]] = []
        self.killed_at: float | None = None
        self.killed_in: str | None = None

    def run(
        self, timeout: float = 900, kill_in_task: str | None = None, kill_after: float = 0.0, kill_when=None
    ) -> int:
        """Run to the end, or SIGKILL the controller's tree ``kill_after`` seconds into task ``kill_in_task``, or as
        soon as ``kill_when()`` (asked every 50 ms while the run lasts) is true."""
        start = time.monotonic()
        proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        timer = None

        def kill():
            if proc.poll() is not None:
                return  # it ended before the moment drawn: no crash this time (recorded as killed=False)
            tasks = [ln for _t, ln in self.lines if ln.startswith("TASK [")]
            kill_tree(proc.pid)
            self.killed_at = time.monotonic() - start
            self.killed_in = tasks[-1] if tasks else None

        watchdog = threading.Timer(timeout, lambda: kill_tree(proc.pid))
        watchdog.start()
        if kill_when is not None:

            def watch():
                while proc.poll() is None:
                    if kill_when():
                        kill()
                        return
                    time.sleep(0.05)

            timer = threading.Thread(target=watch, daemon=True)
            timer.start()
        try:
            for line in proc.stdout:
                self.lines.append((time.monotonic() - start, line.rstrip("\n")))
                if kill_in_task and timer is None and line.startswith(f"TASK [{kill_in_task}"):
                    timer = threading.Timer(kill_after, kill)
                    timer.start()
            rc = proc.wait()
        finally:
            watchdog.cancel()
            if timer:
                timer.join()
        self.seconds = time.monotonic() - start
        self.rc = rc
        return rc

    @property
    def output(self) -> str:
        return "\n".join(line for _t, line in self.lines)

    def task_seconds(self, task: str) -> float:
        """How long ``task`` took (from its TASK line to the next TASK/PLAY line)."""
        started = None
        for t, line in self.lines:
            if started is None and line.startswith(f"TASK [{task}"):
                started = t
            elif started is not None and line.startswith(("TASK [", "PLAY ")):
                return t - started
        raise AssertionError(f"task {task!r} not found in the output")


# ------------------------------------------------------------------------- what the API holds
def observer(box):
    """Reading what the API holds: the sandbox's administrator (never faulted: chaos targets the user's key)."""
    return box.client()


def flow_instances(ec2, flow: str) -> list[dict]:
    res = ec2.describe_instances(Filters=[{"Name": "tag:BakeryFlow", "Values": [flow]}])
    return [i for r in res["Reservations"] for i in r["Instances"] if i["State"]["Name"] in LIVE]


def named_instances(ec2, name: str) -> list[dict]:
    res = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    return [i for r in res["Reservations"] for i in r["Instances"] if i["State"]["Name"] in LIVE]


def images_named(ec2, name: str) -> list[dict]:
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]


def flow_leftovers(ec2, flow: str) -> dict:
    """Everything of flow ``flow`` still in the API; empty lists when teardown left nothing."""
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{flow}-*"]}])
    return {
        "instances": [i["InstanceId"] for i in flow_instances(ec2, flow)],
        "images": [
            i["ImageId"]
            for i in ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [f"{flow}-*"]}])["Images"]
        ],
        "snapshots": [
            s["SnapshotId"]
            for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:BakeryFlow", "Values": [flow]}])[
                "Snapshots"
            ]
        ],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"] == flow],
        "security_groups": [g["GroupName"] for g in groups["SecurityGroups"]],
    }


def record(section: str, entry: dict) -> None:
    """Append a measured figure to .build/reliability/figures.json (read by docs/RELIABILITY.md's reruns)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / "figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(section, []).append(dict(entry, at=time.strftime("%Y-%m-%dT%H:%M:%S")))
    path.write_text(json.dumps(data, indent=1))


def chaos_on(box, seed: int) -> dict:
    """The issue's fault mix on this test's requests only: 20 % throttling, 5 % 5xx, 5 % lost, plus latency."""
    return box.chaos(
        seed=seed,
        throttle=0.20,
        error=0.05,
        drop_before=0.025,
        drop_after=0.025,
        latency=0.10,
        latency_ms=300,
        max_faults=5000,
        seconds=1800,
        access_key=box.env()["AWS_ACCESS_KEY_ID"],
    )
