"""Kernel limits that bound how many hosts fit, raised while the sandbox runs and put back by `down`.

Every host is systemd in a container, and the kernel counts its inotify instances and watches against
root, the user the containers run as: about 7 instances and 80 watches per host. Debian's default of
128 instances per user fits about 18 hosts. The values found are written to the record in the state
dir before anything changes, so `down` puts them back after a crash too.
"""

from __future__ import annotations

import resource
from pathlib import Path

from . import net

PROC_SYS = Path("/proc/sys")
CAPACITY = 64  # hosts the sandbox is sized for
# sysctl (as a path under /proc/sys) -> the least value the sandbox needs for CAPACITY hosts.
NEEDED = {
    "fs/inotify/max_user_instances": 1024,  # ~7 per host + the machine's own, with room to spare
    "fs/inotify/max_user_watches": 524288,
}


def raise_limits(proc_sys: Path = PROC_SYS) -> dict[str, tuple[int, int]]:
    """Raise each limit below its need; return {name: (before, now)} of those changed."""
    rec = net.load_record()
    before = rec.setdefault("sysctl_before", {})
    current = {name: int((proc_sys / name).read_text().split()[0]) for name in NEEDED}
    for name, value in current.items():
        before.setdefault(name, value)  # the machine's own value, kept across restarts after a crash
    net.save_record(rec)  # recorded before anything changes
    changed = {}
    for name, need in NEEDED.items():
        if current[name] < need:
            (proc_sys / name).write_text(f"{need}\n")
            changed[name] = (current[name], need)
    # The sandbox process and its hosts' nspawn processes: as many open files as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return changed


def restore_limits(rec: dict, proc_sys: Path = PROC_SYS) -> list[str]:
    """Put back the values the record holds (after a clean stop or a crash)."""
    done = []
    for name, value in sorted(rec.get("sysctl_before", {}).items()):
        path = proc_sys / name
        if path.exists() and int(path.read_text().split()[0]) != int(value):
            path.write_text(f"{value}\n")
            done.append(f"sysctl {name.replace('/', '.')}={value}")
    return done
