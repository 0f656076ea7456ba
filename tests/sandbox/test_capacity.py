"""Capacity without root or hosts: kernel limits raised and put back, a boot that fails is never silent.

These run anywhere (no root, no lock): the limits against a copy of /proc/sys in a temporary directory,
the host's boot against a stand-in for systemd-nspawn, the state reason through botocore's own parser.
What needs real hosts (the limits on the machine, a broken image, 24 hosts) is in test_fleet.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import botocore.session
import pytest
from botocore.parsers import create_parser

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import config, hosts, limits, net
from sandbox.core import Core
from sandbox.services.ec2 import Ec2

INOTIFY = "fs/inotify/max_user_instances"
WATCHES = "fs/inotify/max_user_watches"


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A state dir (record, hosts) and a /proc/sys with Debian's defaults, both in tmp_path."""
    monkeypatch.setattr(config, "RECORD_FILE", tmp_path / "record.json")
    monkeypatch.setattr(config, "HOSTS_DIR", tmp_path / "hosts")
    proc_sys = tmp_path / "sys"
    for name, value in ((INOTIFY, 128), (WATCHES, 192536)):
        (proc_sys / name).parent.mkdir(parents=True, exist_ok=True)
        (proc_sys / name).write_text(f"{value}\n")
    return proc_sys


def values(proc_sys: Path) -> dict[str, int]:
    return {name: int((proc_sys / name).read_text()) for name in (INOTIFY, WATCHES)}


def test_limits_are_raised_recorded_first_and_put_back(state):
    machine = values(state)
    changed = limits.raise_limits(state)
    assert changed == {INOTIFY: (128, 1024), WATCHES: (192536, 524288)}
    assert values(state) == {INOTIFY: 1024, WATCHES: 524288}
    assert net.load_record()["sysctl_before"] == machine
    done = limits.restore_limits(net.load_record(), state)
    assert values(state) == machine
    assert done == ["sysctl fs.inotify.max_user_instances=128", "sysctl fs.inotify.max_user_watches=192536"]


def test_after_a_crash_and_a_restart_the_machine_values_are_still_the_ones_put_back(state):
    machine = values(state)
    limits.raise_limits(state)
    limits.raise_limits(state)  # a second start over the record of a crashed one: raised values are not "before"
    assert net.load_record()["sysctl_before"] == machine
    limits.restore_limits(net.load_record(), state)
    assert values(state) == machine


def test_higher_limits_of_the_machine_are_left_alone(state):
    (state / INOTIFY).write_text("8192\n")
    assert INOTIFY not in limits.raise_limits(state)
    assert values(state)[INOTIFY] == 8192
    assert limits.restore_limits(net.load_record(), state) == ["sysctl fs.inotify.max_user_watches=192536"]
    assert values(state)[INOTIFY] == 8192


def test_an_exit_during_boot_stops_the_host_with_the_log_line_and_no_race(state, monkeypatch):
    """The watcher cleans up while start() still probes sshd: start() must not read the proc it replaced."""
    for name in ("mount", "umount", "provision"):
        monkeypatch.setattr(hosts.Host, name, lambda self: None)
    monkeypatch.setattr(hosts.net, "host_route", lambda *a, **k: None)
    popen = subprocess.Popen
    guest = "sleep 0.5; echo 'systemd 252 running in system mode'"
    guest += "; echo 'Failed to create control group inotify object: "
    guest += "Too many open files'; echo '[!!!!!!] Failed to allocate manager object.'; exit 1"
    monkeypatch.setattr(hosts.subprocess, "Popen", lambda cmd, **kw: popen(["sh", "-c", guest], **kw))
    host = hosts.Host("i-0123456789abcdef0", "us-east-1", [], "172.31.0.9", 20, "172.31.0.1", None, "a", None, b"")
    host.dir.mkdir(parents=True)
    (host.dir / "console.log").write_text("an earlier boot: Failed to mount something\n")

    def ssh_answers(ns):  # answers only after the watcher has stopped the host: the old race, every time
        deadline = time.monotonic() + 10
        while host.state != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
        return False

    monkeypatch.setattr(hosts, "ssh_answers", ssh_answers)
    errors = []
    starter = threading.Thread(target=lambda: _record_errors(host.start, errors))
    starter.start()
    starter.join(20)
    assert errors == []
    deadline = time.monotonic() + 10  # the watcher's own thread may still be finishing
    while host.state != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host.state == "stopped"
    assert host.proc is None
    code, message = host.state_reason
    assert code == "Server.InternalError"
    assert message == (
        "Server.InternalError: host exited during boot (status 1): "
        "Failed to create control group inotify object: Too many open files"
    ), "the first error of this boot (not of the earlier one)"


def _record_errors(fn, errors):
    try:
        fn()
    except Exception as exc:  # the test reports whatever start() raised
        errors.append(repr(exc))


def test_state_reason_of_a_stopped_host_reaches_the_client(state):
    core = Core(port=1, base_layers={})
    host = hosts.Host("i-0123456789abcdef0", "us-east-1", [], "172.31.0.9", 20, "172.31.0.1", None, "a", None, b"")
    host.state, host.state_reason = "stopped", ("Server.InternalError", "Server.InternalError: it broke")
    core.hosts[host.instance_id] = host
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="{config.EC2_NS.rstrip("/")}">'
        "<requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item>"
        f"<instanceId>{host.instance_id}</instanceId><instanceState><code>16</code><name>running</name>"
        "</instanceState><reason></reason></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
    ).encode()
    out = Ec2(core, moto=None).after("DescribeInstances", {}, "us-east-1", body)
    model = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")
    parsed = create_parser("ec2").parse({"body": out, "headers": {}, "status_code": 200}, model.output_shape)
    inst = parsed["Reservations"][0]["Instances"][0]
    assert inst["State"] == {"Code": 80, "Name": "stopped"}
    assert inst["StateReason"] == {"Code": "Server.InternalError", "Message": "Server.InternalError: it broke"}
    assert inst["StateTransitionReason"] == "Server.InternalError: it broke"
