"""What the sandbox's hosts hold of the machine: memory (PSS), processes, inotify instances and watches.

Read from /proc for the process trees under given PIDs (each host's nspawn and its container); used by the
fleet test (tests/sandbox/test_fleet.py) and the scale benchmark (bench/scale.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import net


def host_pids(instance_ids) -> list[int]:
    """The nspawn PIDs of the running hosts of ``instance_ids`` (from the sandbox's record)."""
    wanted = set(instance_ids)
    return [pid for pid, ns in net.load_record().get("pids", []) if ns.removeprefix("bks-") in wanted]


def host_usage(pids: list[int]) -> dict[str, int]:
    """What the process trees under ``pids`` hold: PSS (KiB), processes, inotify instances and watches,
    the kernel resources the sandbox's capacity depends on."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    use = {"pss_kib": 0, "processes": 0, "inotify_instances": 0, "inotify_watches": 0}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        use["processes"] += 1
        use["pss_kib"] += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        for fd in fds:
            try:
                if os.readlink(fd) != "anon_inode:inotify":
                    continue
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            except OSError:
                continue
            use["inotify_instances"] += 1
            use["inotify_watches"] += info.count("inotify wd:")
    return use
