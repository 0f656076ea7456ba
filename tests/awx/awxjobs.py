"""What AWX does around a job, done with ansible-runner (the library AWX runs its jobs with).

Each job gets its own private data directory, as AWX builds it:

- ``project/``: the project checkout (here: the repository's ``playbooks/``);
- ``env/envvars``: the credentials' environment injections (the Amazon Web Services credential type puts the keys
  there; a custom type the endpoint), plus the execution environment's settings, and a fresh ``HOME``;
- ``env/extravars``: survey answers and the extra variables of custom credentials;
- ``env/ssh_key``: the Machine credential's private key, which ansible-runner hands to ``ssh-agent``;
- ``env/cmdline``: ``-u <user>`` of the Machine credential;
- ``inventory/hosts``: the inventory as synced by the last inventory update, an executable script printing the
  ``ansible-inventory --list --export`` snapshot (never the plugin config itself).

An inventory update is a job too (``ansible-inventory --list --export`` of the plugin config, with the AWS
credential's environment). Job slicing splits the snapshot's hosts into N inventories, host i to slice i mod N.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".build" / "collections"


@dataclass
class Job:
    name: str
    status: str
    rc: int
    stdout: str
    started: float
    finished: float
    private_data_dir: Path
    home: Path

    def recap_hosts(self):
        """Host names of the PLAY RECAP (the hosts the job ran on), localhost left out."""
        recap = self.stdout.split("PLAY RECAP", 1)[-1]
        names = [line.split(":", 1)[0].strip() for line in recap.splitlines() if " : ok=" in line]
        return sorted(n for n in names if n != "localhost")


@dataclass
class Awx:
    """One AWX organisation's setup: credentials, Machine key and survey answers shared by the templates."""

    root: Path
    credential_env: dict
    machine_key: str
    machine_user: str
    extra_vars: dict
    jobs: list = field(default_factory=list)
    made: int = 0

    def _private_data_dir(self):
        self.made += 1
        # Short, as AWX's /tmp/awx_<id>_<random>: ssh's control socket lives under it (108 bytes at most).
        pdd = self.root / f"{self.made:02d}"
        (pdd / "env").mkdir(parents=True)
        (pdd / "inventory").mkdir()
        shutil.copytree(REPO / "playbooks", pdd / "project" / "playbooks")
        home = pdd / "home"
        home.mkdir()
        envvars = {
            **self.credential_env,
            "HOME": str(home),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(pdd / "cp"),
            # The execution environment: the collection installed, Ansible without colour.
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
        (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
        return pdd, home

    def inventory_update(self, config, timeout=120):
        """An inventory update: the snapshot ``ansible-inventory --list --export`` makes of ``config``."""
        pdd, home = self._private_data_dir()
        started = time.monotonic()
        out, err, rc = ansible_runner.run_command(
            executable_cmd="ansible-inventory",
            cmdline_args=["-i", str(pdd / "project" / "playbooks" / "inventory" / config), "--list", "--export"],
            private_data_dir=str(pdd),
            envvars=yaml.safe_load((pdd / "env" / "envvars").read_text()),
            timeout=timeout,
            quiet=True,
            # stdout alone is the inventory (a pty would mix in what Python warns on stderr).
            runner_mode="subprocess",
        )
        job = Job(
            "inventory update",
            "successful" if rc == 0 else "failed",
            rc,
            out + err,
            started,
            time.monotonic(),
            pdd,
            home,
        )
        self.jobs.append(job)
        assert rc == 0, f"inventory update of {config} failed: {err[-2000:]}"
        return json.loads(out)

    def job(self, name, playbook, inventory, extra_vars=None, timeout=900):
        """Run a job template's playbook as AWX does; return the finished Job."""
        thread, job = self.job_async(name, playbook, inventory, extra_vars, timeout)
        thread.join(timeout + 30)
        return job()

    def job_async(self, name, playbook, inventory, extra_vars=None, timeout=900):
        """Start a job in the background: (thread, a function returning the Job once the thread has ended)."""
        pdd, home = self._private_data_dir()
        (pdd / "env" / "extravars").write_text(yaml.safe_dump({**self.extra_vars, **(extra_vars or {})}))
        (pdd / "env" / "ssh_key").write_text(self.machine_key)
        (pdd / "env" / "cmdline").write_text(f"-u {self.machine_user}")
        script = pdd / "inventory" / "hosts"
        script.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(inventory))})\n")
        script.chmod(0o700)
        started = time.monotonic()
        finished = []
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(pdd),
            playbook=f"playbooks/{playbook}",
            timeout=timeout,
            quiet=True,
            finished_callback=lambda _runner: finished.append(time.monotonic()),
        )

        def result():
            stdout = (Path(runner.config.artifact_dir) / "stdout").read_text()
            job = Job(name, runner.status, runner.rc, stdout, started, (finished or [time.monotonic()])[0], pdd, home)
            self.jobs.append(job)
            return job

        return thread, result


def plain(value):
    """A snapshot's value without the markers ``ansible-inventory --export`` puts on untrusted strings
    (``{"__ansible_unsafe": "..."}``; the job's Ansible reads them back as such)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hostvar(inventory, host, name):
    """A host's variable in a snapshot, as a plain value."""
    return plain(inventory["_meta"]["hostvars"][host].get(name))


def slices(inventory, count, only=None):
    """The inventories of ``count`` slices of an ``--export`` snapshot, as AWX's job slicing makes them; ``only``: the
    hosts the inventory holds (an AWX inventory source filtered to them), else every host of the snapshot."""
    hostvars = {h: v for h, v in inventory.get("_meta", {}).get("hostvars", {}).items() if only is None or h in only}
    hosts = sorted(hostvars)
    out = []
    for number in range(count):
        mine = set(hosts[number::count])
        groups = {
            name: {**group, "hosts": [h for h in group.get("hosts", []) if h in mine]}
            for name, group in inventory.items()
            if name != "_meta"
        }
        groups["_meta"] = {"hostvars": {h: v for h, v in hostvars.items() if h in mine}}
        out.append(groups)
    return out
