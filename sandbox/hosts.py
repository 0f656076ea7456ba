"""Real hosts: overlayfs root over image layers, systemd-nspawn --boot inside a per-host netns."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config, net

CLONE_NEWNET = 0x40000000
NSPAWN_REBOOT_EXIT = 133  # systemd-nspawn exits with this when the guest asked to reboot
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
log = logging.getLogger("sandbox")
# EC2's state reasons (code, message) for an instance that stops by itself.
GUEST_SHUTDOWN = ("Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
BOOT_FAILED = "Server.InternalError"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TELLING = re.compile(r"fail|error|too many|cannot|can't|denied|not found|no such", re.IGNORECASE)


def boot_failure_reason(log_text: str, status: int) -> tuple[str, str]:
    """The state reason of a host that exited during boot: the first error of its console log."""
    lines = [line.strip() for line in _ANSI.sub("", log_text).splitlines()]
    lines = [line for line in lines if line and "Attempted to remove disk file system" not in line]
    telling = [line for line in lines if _TELLING.search(line)]
    why = (telling[:1] or lines[-1:] or ["no output"])[0]  # the first error is the cause; the rest follow
    why = why.removeprefix("[!!!!!!]").strip()[:200]
    return BOOT_FAILED, f"{BOOT_FAILED}: host exited during boot (status {status}): {why}"


CGROUP_PARENT = "bakery-hosts"


def cgroup_dirs(instance_id: str) -> list[Path]:
    """The host's own cgroup in each hierarchy systemd uses (the named v1 one and the unified one, or v2 alone).

    systemd-nspawn --keep-unit puts its "supervisor" and "payload" cgroups beside the cgroup it starts in. Started
    from the sandbox's cgroup, every host shared one "payload" tree: one guest's systemd removing a unit's cgroup
    raced another's creating it, and a unit failed at boot ("Failed to attach to cgroup
    /system.slice/systemd-user-sessions.service: No such file or directory", status 219/CGROUP), leaving the host
    refusing logins ("System is booting up") for good. Each host's nspawn starts in a cgroup of its own.
    """
    return [parent / instance_id for parent in _cgroup_parents()]


def _cgroup_parents() -> list[Path]:
    """``bakery-hosts`` in each hierarchy systemd uses: the parent of every host's own cgroup."""
    base = Path("/sys/fs/cgroup")
    roots = [r for r in (base / "systemd", base / "unified") if (r / "cgroup.procs").exists()]
    if not roots and (base / "cgroup.controllers").exists():  # the unified hierarchy alone
        roots = [base]
    return [r / CGROUP_PARENT for r in roots]


def remove_cgroups(dirs: list[Path]) -> None:
    """Remove these cgroups and what is left below them (empty once their processes are gone), deepest first."""
    for top in dirs:
        if not top.is_dir():
            continue
        below = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*below, top]:
            with contextlib.suppress(OSError):
                d.rmdir()


def remove_all_cgroups() -> list[str]:
    """Every host cgroup the sandbox made (teardown, also after a crash)."""
    parents = [p for p in _cgroup_parents() if p.is_dir()]
    remove_cgroups(parents)  # each with everything below it, deepest first
    return [f"cgroup {p}" for p in parents]


def ssh_answers(ns: str, timeout: float = 0.3) -> bool:
    """Connect to 127.0.0.1:22 inside the host's namespace (from a thread that joins it)."""
    result = [False]

    def probe() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        except OSError:
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                return
            with socket.create_connection(("127.0.0.1", 22), timeout=timeout) as s:
                s.settimeout(timeout)
                result[0] = s.recv(4).startswith(b"SSH-")
        except OSError:
            pass
        finally:
            os.close(fd)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)
    return result[0]


@dataclass
class Host:
    instance_id: str
    region: str
    layers: list[str]  # lower dirs, top first
    ip: str
    prefix: int
    gateway: str
    mac: str | None
    az: str
    public_key: str | None
    user_data: bytes
    state: str = "pending"
    state_reason: tuple[str, str] | None = None  # (code, message) when it stopped by itself
    proc: subprocess.Popen | None = None
    booted_once: bool = False
    log_offset: int = 0  # where this boot's console output starts
    lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------ paths
    @property
    def dir(self) -> Path:
        return config.HOSTS_DIR / self.instance_id

    @property
    def merged(self) -> Path:
        return self.dir / "merged"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def ns(self) -> str:
        return net.ns_name(self.instance_id)

    @property
    def hostname(self) -> str:
        return "ip-" + self.ip.replace(".", "-")

    # ------------------------------------------------------------ lifecycle
    def mount(self) -> None:
        for d in ("upper", "work", "merged"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.merged):
            return
        net.record_add("mounts", str(self.merged))
        opts = f"lowerdir={':'.join(self.layers)},upperdir={self.upper},workdir={self.dir / 'work'}"
        net.sh("mount", "-t", "overlay", "overlay", "-o", opts, str(self.merged))

    def umount(self) -> None:
        if os.path.ismount(self.merged):
            net.sh("umount", str(self.merged), check=False)
            if os.path.ismount(self.merged):
                net.sh("umount", "-l", str(self.merged), check=False)
        net.record_remove("mounts", str(self.merged))

    def provision(self) -> None:
        """cloud-init's job, done from outside before boot: identity, keys, user-data."""
        m = self.merged
        (m / "etc/hostname").write_text(self.hostname + "\n")
        (m / "etc/hosts").write_text(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
            f"{self.ip} {self.hostname}.ec2.internal {self.hostname}\n" + "".join(MIRROR_PINS)
        )
        if self.booted_once:
            return
        # First boot of this instance (also first boot of a clone): fresh identity.
        (m / "etc/machine-id").write_text("")
        for old in (m / "etc/ssh").glob("ssh_host_*"):
            old.unlink()
        for kind in ("ed25519", "ecdsa"):
            key = m / f"etc/ssh/ssh_host_{kind}_key"
            net.sh("ssh-keygen", "-q", "-N", "", "-t", kind, "-C", f"root@{self.hostname}", "-f", str(key))
        lib = m / "var/lib/bakery"
        lib.mkdir(parents=True, exist_ok=True)
        (lib / "instance-id").write_text(self.instance_id + "\n")
        (lib / "user-data").write_bytes(self.user_data)
        os.chmod(lib / "user-data", 0o600)
        if self.public_key:
            ssh_dir = m / f"home/{config.LOGIN_USER}/.ssh"
            ssh_dir.mkdir(parents=True, exist_ok=True)
            auth = ssh_dir / "authorized_keys"
            auth.write_text(self.public_key.strip() + "\n")
            for p, mode in ((ssh_dir, 0o700), (auth, 0o600)):
                os.chown(p, config.LOGIN_UID, config.LOGIN_UID)
                os.chmod(p, mode)

    def start(self) -> None:
        with self.lock:
            self.state, self.state_reason = "pending", None
            net.host_route(self.ip, True, self.gateway)
            self.mount()
            self.provision()
            console = open(self.dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
            self.log_offset = console.tell()
            cgroups = cgroup_dirs(self.instance_id)
            try:
                for d in cgroups:
                    d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a machine where cgroups cannot be made: nspawn's own place, shared as before
                log.warning("host %s: no cgroup of its own (%s)", self.instance_id, exc)
                cgroups = []
            # The shell joins the host's cgroups, then becomes systemd-nspawn (same PID).
            join = (
                'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || exit 1; n=$((n - 1)); shift; done'
            )
            cmd = [
                "sh",
                "-c",
                join + '; exec "$@"',
                "sh",
                str(len(cgroups)),
                *map(str, cgroups),
                "systemd-nspawn",
                "--quiet",
                "--boot",
                "--register=no",
                "--keep-unit",
                f"--network-namespace-path=/run/netns/{self.ns}",
                "--console=passive",
                f"--machine={self.ns}",
                f"--hostname={self.hostname}",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                f"--directory={self.merged}",
            ]
            proc = self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
            )
            console.close()
            net.record_add("pids", [proc.pid, self.ns])
            self.booted_once = True
            threading.Thread(target=self._watch, args=(proc,), daemon=True).start()
        # Only the local ``proc``: the watcher or an API stop may replace ``self.proc`` at any moment.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ssh_answers(self.ns):
                break
            time.sleep(0.1)
        with self.lock:  # on a timeout AWS would say running too; sshd is just slow
            if self.proc is proc and proc.poll() is None and self.state == "pending":
                self.state = "running"

    def _watch(self, proc: subprocess.Popen) -> None:
        """Follow an exit the API did not ask for, as EC2 does; the instance never stops silently.

        ``reboot`` in the guest makes systemd-nspawn exit with 133: boot the host again (same disk,
        same identity). A power-off from inside leaves the instance stopped, as EC2's default
        shutdown behaviour does (Client.InstanceInitiatedShutdown). An exit during boot leaves it
        stopped with Server.InternalError and the telling line of the console log. A stop or terminate
        through the API replaces ``self.proc`` first, so its exit is not followed here.
        """
        code = proc.wait()
        with self.lock:
            if self.proc is not proc:
                return
            if code == NSPAWN_REBOOT_EXIT:
                self.stop()
                reboot = True
            else:
                booting = self.state == "pending"
                reason = GUEST_SHUTDOWN
                if booting:
                    with contextlib.suppress(OSError), open(self.dir / "console.log", "rb") as f:
                        f.seek(self.log_offset)
                        reason = boot_failure_reason(f.read().decode(errors="replace"), code)
                self.stop()
                self.state_reason = reason
                reboot = False
                log.warning("host %s stopped by itself: %s", self.instance_id, reason[1])
        if reboot:
            self.start()

    def stop(self, timeout: float = 15) -> None:
        with self.lock:
            terminating = self.state == "shutting-down"  # a terminate reads shutting-down until it is done
            if not terminating:
                self.state = "stopping"
            proc, self.proc = self.proc, None
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc:
                net.record_remove("pids", [proc.pid, self.ns])
            remove_cgroups(cgroup_dirs(self.instance_id))
            self.umount()
            net.host_route(self.ip, False)
            if not terminating:
                self.state = "stopped"

    def destroy(self) -> None:
        self.state = "shutting-down"
        self.stop(timeout=10)
        net.delete_host_net(self.instance_id, self.ip)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.state = "terminated"


MIRROR_PINS: list[str] = []  # "IP name\n" lines, set by the server at start


def kill_recorded(pids: list) -> None:
    """After a crash: stop the nspawn processes the record names (checking they are ours)."""
    for pid, ns in pids:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not cmdline or b"systemd-nspawn" not in cmdline[0] or f"--machine={ns}".encode() not in cmdline:
                continue
            net.terminate(pid, grace=10)


def unmount_all() -> list[str]:
    done = []
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    prefix = str(config.HOSTS_DIR) + "/"
    for line in reversed(mounts):
        target = line.split()[1]
        if target.startswith(prefix):
            net.sh("umount", target, check=False)
            if os.path.ismount(target):
                net.sh("umount", "-l", target, check=False)
            done.append(f"mount {target}")
    return done
