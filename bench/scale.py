"""Case 6, fleet scale on the sandbox: time until N servers answer, bake+clone against configure-each.

Both sides end with N servers answering behind a load balancer they create, as a fleet is served:

- **configure-each(N)**: the flow's load balancer and N instances launched from the Debian 12 base image
  (bench/fleet/launch.yml with ``bench_behind_lb``), configured by the flow's own playbooks/configure.yml (the
  webserver role; its last task waits until the app answers through nginx on every host), then registered in
  the target group until each is healthy and the load balancer answers (bench/fleet/register.yml). Time =
  launch + configure + register, each an ``ansible-playbook`` run.
- **bake**: the flow's first steps, one instance launched without a load balancer, configured, then
  playbooks/image.yml of that instance. **bake+clone(N)** = bake + playbooks/clone.yml with ``flow_clone_count=N``
  (it creates the load balancer, launches the clones behind it and waits, from the controller, until every one
  answers /healthz with its own instance ID and the load balancer answers).
- **memory**: PSS of every host's processes (nspawn, systemd, sshd, nginx, gunicorn, ...) once they serve.

Each configuration runs on the sandbox as the flow runs (least-privilege user, the flow's inventory); between
sizes the hosts are terminated and the load balancer, target group and security groups deleted through the API,
so that every size pays for its own. Raw figures are merged into bench/scale-results.json by size, so that
the case can run in pieces (``--scale-each``, ``--scale-clones``); the report section, its targets and the plot
(bench/scale.svg, matplotlib) are drawn from everything that file holds.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from app_sandbox import guest_endpoint
from cases import delete_flow_groups, delete_load_balancer, delete_store, ec2_client, log, teardown_flow, terminate
from harness import HERE, REPO, Watcher, base_env, run_playbook

sys.path.append(str(REPO))
from sandbox.usage import host_pids, host_usage  # what the fleet test measures too

RESULTS = HERE / "scale-results.json"
PLOT = HERE / "scale.svg"
INVENTORY = REPO / "playbooks" / "inventory" / "bakery.instances.yml"
SIZES = (1, 4, 8, 16, 32, 64)
# configure-each is measured only up to where it stays under this (projected linearly from the last size).
EACH_LIMIT_S = 600


def flow_ids(ec2, flow_name: str, role: str) -> list[str]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:BakeryFlow", "Values": [flow_name]},
            {"Name": "tag:BakeryRole", "Values": [role]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


def pss_mib_per_host(ids: list[str]) -> float:
    return round(host_usage(host_pids(ids))["pss_kib"] / max(len(ids), 1) / 1024, 1)


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (every core, not idle or waiting for I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children (ansible-playbook and the workers it forked and waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_of(res) -> float:
    return round(res.wall, 1)


def slowest_tasks(res, top: int = 6) -> dict[str, float]:
    """Seconds from each task's start to its last host's result, the ``top`` longest (where the time goes)."""
    spans: dict[str, list[float]] = {}
    for t in res.tasks:
        span = spans.setdefault(t["task"], [t["start"], t["end"]])
        span[0], span[1] = min(span[0], t["start"]), max(span[1], t["end"])
    longest = sorted(spans.items(), key=lambda kv: kv[1][0] - kv[1][1])[:top]
    return {name: round(end - start, 1) for name, (start, end) in longest}


class Scale:
    """One flow name (key pair, security groups, image) for every size measured in one piece."""

    def __init__(self, url: str, workdir: Path, watcher: Watcher, store: str = "dynamodb", mitogen: bool = False):
        self.ec2 = ec2_client(url)
        self.watcher = watcher
        self.workdir = workdir
        self.store = store
        # A flow of its own when configure.yml runs with Mitogen (the strategy bakery.ec2.mitogen_linear).
        self.flow_name = f"bench-scale-{int(time.time()) % 100000}" + ("-m" if mitogen else "")
        # Where the hosts reach DynamoDB and S3 (the sandbox's guest endpoint), as make sandbox's env gives it.
        self.env = dict(base_env(url, workdir), BENCH_SANDBOX="1", BAKERY_SANDBOX_GUEST_ENDPOINT=guest_endpoint())
        # The flow's default store (dynamodb: every host reads the instance role's credentials from IMDS and asks
        # DynamoDB and S3 at start, all at once in a fleet), or sqlite (nothing shared).
        self.extra = {"flow_name": self.flow_name, "flow_key_path": str(workdir / "key"), "flow_store": store}
        if mitogen:
            self.extra["flow_mitogen"] = True

    def play(self, playbook: Path, timeout: int = 1800, **extra):
        return run_playbook(
            "ours", playbook, self.env, self.workdir, dict(self.extra, **extra), inventory=INVENTORY, timeout=timeout
        )

    def configure(self, n: int) -> tuple[dict, float]:
        """playbooks/configure.yml over the ``n`` source instances launched: its figures (with the CPU it cost) and
        its unrounded wall time."""
        # Where configuring's CPU goes, on 2 cores shared by the controller and every host: the controller's
        # (ansible-playbook and its workers) and the rest of the machine's (the hosts: apt, the modules' Python,
        # the app; plus the sandbox's API, small next to them).
        machine0, controller0 = busy_cpu_s(), children_cpu_s()
        configure = self.play(REPO / "playbooks" / "configure.yml")
        machine, controller = busy_cpu_s() - machine0, children_cpu_s() - controller0
        ids = flow_ids(self.ec2, self.flow_name, "source")
        if len(ids) != n:
            raise RuntimeError(f"configure-each {n}: {len(ids)} instances found: {ids}")
        return {
            "configure_s": wall_of(configure),
            "pss_mib_per_host": pss_mib_per_host(ids),
            "configure_tasks_s": slowest_tasks(configure),
            "configure_cpu_s_per_host": {
                "controller": round(controller / n, 2),
                "hosts": round(max(machine - controller, 0) / n, 2),
            },
        }, configure.wall

    def each(self, n: int) -> dict:
        """configure-each(n): the load balancer and n instances, configured, then behind it (as clone.yml's)."""
        launch = self.play(HERE / "fleet" / "launch.yml", bench_count=n, bench_behind_lb=True)
        configured, configure_wall = self.configure(n)
        register = self.play(HERE / "fleet" / "register.yml", bench_count=n)
        return dict(
            configured,
            launch_s=wall_of(launch),
            register_s=wall_of(register),
            total_s=round(launch.wall + configure_wall + register.wall, 1),
        )

    def bake(self) -> dict:
        """The flow's first three steps: one source instance (no load balancer), configured, then imaged."""
        launch = self.play(HERE / "fleet" / "launch.yml", bench_count=1)
        configured, configure_wall = self.configure(1)
        image = self.play(REPO / "playbooks" / "image.yml")
        return {
            "launch_s": wall_of(launch),
            "configure_s": configured["configure_s"],
            "configure_tasks_s": configured["configure_tasks_s"],
            "image_s": wall_of(image),
            "total_s": round(launch.wall + configure_wall + image.wall, 1),
        }

    def clone(self, n: int) -> dict:
        res = self.play(REPO / "playbooks" / "clone.yml", flow_clone_count=n)
        ids = flow_ids(self.ec2, self.flow_name, "clone")
        if len(ids) != n:
            raise RuntimeError(f"clone {n}: {len(ids)} instances found: {ids}")
        return {"clone_s": wall_of(res), "pss_mib_per_host": pss_mib_per_host(ids), "clone_tasks_s": slowest_tasks(res)}

    def remove(self, role: str) -> None:
        """Terminate the instances of ``role``, then remove the load balancer, its target group and the flow's
        security groups: every size starts from the same place, and pays for its load balancer as a new flow does."""
        terminate(self.ec2, self.watcher, flow_ids(self.ec2, self.flow_name, role), timeout=300)
        delete_load_balancer(self.flow_name)
        delete_flow_groups(self.ec2, self.flow_name)

    def teardown(self) -> None:
        teardown_flow(self.ec2, self.watcher, self.flow_name)
        if self.store == "dynamodb":
            delete_store(self.flow_name)


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"each": {}, "clone": {}, "bake": None}


def save(found: dict, machine: str, store: str = "sqlite") -> dict:
    """Merge what was measured into RESULTS (after every size: a later failure loses nothing measured); the
    default store's figures under "<kind>_dynamodb", SQLite's under "<kind>"."""
    merged = load()
    suffix = "" if store == "sqlite" else f"_{store}"
    for kind in ("each", "clone", "each_mitogen"):
        merged.setdefault(kind + suffix, {}).update(found[kind])
    if found["bake"]:
        merged["bake" + suffix] = found["bake"]
    merged["machine"] = machine.split("; aws_ec2")[0]
    merged["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return merged


def case_scale(
    url: str, each_sizes, clone_sizes, machine: str, smoke: bool = False, store: str = "dynamodb", mitogen_sizes=()
) -> dict:
    """Measure configure-each at ``each_sizes`` and bake+clone at ``clone_sizes`` on ``store`` (the flow's default,
    dynamodb, or sqlite), and configure-each with Mitogen (flow_mitogen) at ``mitogen_sizes``; merge into RESULTS."""
    found = {"each": {}, "clone": {}, "each_mitogen": {}, "bake": None, "store": store}

    def measured(what: str) -> None:
        log(f"scale ({store}): {what}")
        if not smoke:
            save(found, machine, store)

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, Watcher(url) as watcher:
        scale = Scale(url, Path(tmp), watcher, store)
        try:
            if clone_sizes:
                log("scale: bake (launch 1, configure it, image it)")
                found["bake"] = scale.bake()
                measured(f"bake {found['bake']}")
                scale.remove("source")
                for n in clone_sizes:
                    found["clone"][str(n)] = scale.clone(n)
                    measured(f"clone {n}: {found['clone'][str(n)]}")
                    scale.remove("clone")
            last = None
            for n in each_sizes:
                if str(n) in found["each"]:
                    last = (n, found["each"][str(n)]["total_s"])
                    continue
                if last and last[1] * n / last[0] > EACH_LIMIT_S:
                    log(f"scale: configure-each {n} skipped: {last[1]:.0f} s at {last[0]} projects past the limit")
                    found["each"][str(n)] = {"skipped": f"projected over {EACH_LIMIT_S} s"}
                    continue
                found["each"][str(n)] = scale.each(n)
                last = (n, found["each"][str(n)]["total_s"])
                measured(f"configure-each {n}: {found['each'][str(n)]}")
                scale.remove("source")
        finally:
            scale.teardown()
        if mitogen_sizes:
            with_mitogen = Scale(url, Path(tmp), watcher, store, mitogen=True)
            try:
                for n in mitogen_sizes:
                    found["each_mitogen"][str(n)] = with_mitogen.each(n)
                    measured(f"configure-each {n} with Mitogen: {found['each_mitogen'][str(n)]}")
                    with_mitogen.remove("source")
            finally:
                with_mitogen.teardown()
    if smoke:
        return {"smoke": True, "text": json.dumps(found)}
    return report(save(found, machine, store))


def sizes(results: dict, kind: str) -> list[int]:
    return sorted(int(n) for n, r in results[kind].items() if "skipped" not in r)


def bake_clone_s(results: dict, n: int) -> float:
    return round(results["bake"]["total_s"] + results["clone"][str(n)]["clone_s"], 1)


def plot(results: dict, path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "bakery-bench"  # the same figures draw the same file
    matplotlib.rcParams["svg.fonttype"] = "none"
    each, clone = sizes(results, "each"), sizes(results, "clone") if results["bake"] else []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    each_s = [results["each"][str(n)]["total_s"] for n in each]
    ax.plot(each, each_s, "o-", label="configure-each (then behind a load balancer)")
    if clone:
        ax.plot(clone, [bake_clone_s(results, n) for n in clone], "s-", label="bake + clone (behind a load balancer)")
        ax.plot(clone, [results["clone"][str(n)]["clone_s"] for n in clone], "^--", label="clone only (after the bake)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(SIZES, [str(n) for n in SIZES])
    ax.set_xlabel("servers (N)")
    ax.set_ylabel("seconds until all N answer")
    ax.set_title("bakery.ec2 on the sandbox (2 cores): time until N servers answer")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---:" for _h in headers) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def where_time_goes(each: dict) -> str:
    measured = [n for n in SIZES if "configure_tasks_s" in each.get(str(n), {})]
    if not measured:
        return ""
    parts = []
    for n in (measured[0], measured[-1]) if len(measured) > 1 else measured:
        tasks = sorted(each[str(n)]["configure_tasks_s"].items(), key=lambda kv: -kv[1])
        parts.append(f"at N={n}: " + ", ".join(f"{name.split(' : ')[-1]} {secs:.1f} s" for name, secs in tasks))
    return "Longest tasks of configure.yml (first start to last host's result) " + "; ".join(parts) + "."


def mitogen_report(results: dict) -> tuple[str, list]:
    """configure-each with and without Mitogen (flow_mitogen), at the sizes measured both ways on the default store
    (else SQLite): a table, and the controller's CPU per host against its target."""
    for suffix in ("_dynamodb", ""):
        with_mitogen = results.get("each_mitogen" + suffix, {})
        without = results.get("each" + suffix, {})
        ns = sorted(
            int(n) for n in with_mitogen if "configure_s" in with_mitogen[n] and "configure_s" in without.get(n, {})
        )
        if ns:
            break
    else:
        return "", []
    rows, targets = [], []

    def cpu(e: dict) -> str:
        c = e["configure_cpu_s_per_host"]
        return f"{c['hosts'] + c['controller']:.2f} ({c['hosts']:.2f} + {c['controller']:.2f})"

    for n in ns:
        off, on = without[str(n)], with_mitogen[str(n)]
        rows.append((n, f"{off['configure_s']:.1f}", f"{on['configure_s']:.1f}", cpu(off), cpu(on)))
    store = "dynamodb" if suffix else "sqlite"
    if 1 in ns and 16 in ns:
        for label, table_of in (("without", without), ("with", with_mitogen)):
            marginal = (table_of["16"]["configure_s"] - table_of["1"]["configure_s"]) / 15
            targets.append(
                (
                    f"fleet: configure-each marginal cost per host at N=16 ≤ 4 s, {label} Mitogen ({store})",
                    marginal <= 4,
                    f"{marginal:.2f} s",
                )
            )
    biggest = str(ns[-1])
    for label, table_of in (("without", without), ("with", with_mitogen)):
        controller = table_of[biggest]["configure_cpu_s_per_host"]["controller"]
        targets.append(
            (
                f"fleet: controller CPU per configured host ≤ 1.0 s, {label} Mitogen (N={biggest}, {store})",
                controller <= 1.0,
                f"{controller:.2f} s",
            )
        )
    text = (
        f"configure.yml with and without Mitogen (flow_mitogen; store {store}; configure-each at each size without, "
        "then with; when each was measured: bench/scale-results.json):\n\n"
        + table(
            [
                "N",
                "configure (s), ansible-core's strategy",
                "configure (s), Mitogen",
                "CPU per host (s), ansible-core's: hosts + controller",
                "CPU per host (s), Mitogen: hosts + controller",
            ],
            rows,
        )
        + "\n"
    )
    return text, targets


def report(results: dict) -> dict:
    """The report section (table, plot link, targets) from everything ``results`` holds."""
    plot(results)
    each, clone = results["each"], results["clone"]
    rows = []
    for n in SIZES:
        e, c = each.get(str(n), {}), clone.get(str(n))
        measured = [m for m in sizes(results, "each") if m < n]
        if "total_s" in e:
            parts = [e["launch_s"], e["configure_s"], e.get("register_s", 0.0)]
            each_text = f"{e['total_s']:.1f} (" + " + ".join(f"{s:.1f}" for s in parts) + ")"
        elif measured and each[str(measured[-1])]["total_s"] * n / measured[-1] > EACH_LIMIT_S:
            last = measured[-1]
            each_text = (
                f"not run: {each[str(last)]['total_s']:.0f} s at N={last} projects past {EACH_LIMIT_S // 60} min"
            )
        else:
            each_text = e.get("skipped", "not run")
        clone_text = f"{bake_clone_s(results, n):.1f} ({c['clone_s']:.1f})" if c and results["bake"] else "not run"
        ahead = ""
        if c and "total_s" in e and results["bake"]:
            ahead = f"{e['total_s'] / bake_clone_s(results, n):.2f}x"
        cpu = e.get("configure_cpu_s_per_host")
        cpu_text = ""
        if cpu:
            cpu_text = f"{cpu['hosts'] + cpu['controller']:.1f} ({cpu['hosts']:.1f} + {cpu['controller']:.1f})"
        rows.append(
            (
                n,
                each_text,
                clone_text,
                ahead,
                cpu_text,
                e.get("pss_mib_per_host", ""),
                c["pss_mib_per_host"] if c else "",
            )
        )
    targets = []
    # A size is recorded only once clone.yml succeeded: ec2_launch waited until every clone was healthy in the target
    # group, each answered /healthz for itself and the load balancer answered.
    default_store = results.get("clone_dynamodb", {})
    for n, c in sorted(default_store.items(), key=lambda kv: int(kv[0])):
        bake = results.get("bake_dynamodb")
        targets.append(
            (
                f"fleet on the default store (dynamodb): {n} clones all healthy behind the load balancer",
                True,
                f"clone.yml {c['clone_s']:.1f} s" + (f" after a bake of {bake['total_s']:.1f} s" if bake else ""),
            )
        )
    if "64" in clone:
        secs = clone["64"]["clone_s"]
        targets.append(("fleet: 64 clones serve within 60 s after the bake", secs <= 60, f"{secs:.1f} s"))
    both = [n for n in sizes(results, "each") if n >= 4 and str(n) in clone and results["bake"]]
    if both:
        behind = [n for n in both if bake_clone_s(results, n) >= each[str(n)]["total_s"]]
        targets.append(
            (
                "fleet: bake+clone ahead of configure-each from N=4",
                not behind,
                ", ".join(f"N={n} {bake_clone_s(results, n):.0f} s vs {each[str(n)]['total_s']:.0f} s" for n in both),
            )
        )
    if "total_s" in each.get("1", {}) and "total_s" in each.get("16", {}):
        marginal = (each["16"]["configure_s"] - each["1"]["configure_s"]) / 15
        targets.append(
            (
                "fleet: configure-each marginal cost per host at N=16 ≤ 4 s",
                marginal <= 4,
                f"{marginal:.2f} s ((configure at 16 - at 1) / 15: {each['16']['configure_s']:.1f} s, "
                f"{each['1']['configure_s']:.1f} s)",
            )
        )
    mitogen_text, mitogen_targets = mitogen_report(results)
    targets += mitogen_targets
    bake = results["bake"]
    text = "\n".join(
        [
            f"![time until N servers answer]({PLOT.name})",
            "",
            table(
                [
                    "N",
                    "configure-each (s): launch + configure + behind the load balancer",
                    "bake+clone (s) (clone alone)",
                    "configure-each / bake+clone",
                    "CPU per configured host (s): hosts + controller",
                    "PSS per configured host (MiB)",
                    "PSS per clone (MiB)",
                ],
                rows,
            ),
            "",
            (
                f"Bake: {bake['total_s']:.1f} s = launch {bake['launch_s']:.1f} s + configure "
                f"{bake['configure_s']:.1f} s + image {bake['image_s']:.1f} s (one instance launched by "
                "bench/fleet/launch.yml without a load balancer, as playbooks/launch.yml launches it, then "
                "configure.yml and image.yml)."
                if bake
                else "Bake: not run."
            ),
            where_time_goes(each),
            mitogen_text,
            f"Raw figures: bench/scale-results.json (last updated {results.get('at', '?')}; "
            f"{results.get('machine', '')}).",
        ]
    )
    return {
        "title": "fleet scale: time until N servers answer, bake+clone against configure-each (sandbox)",
        "setup": (
            "Both sides deliver the same thing: N servers answering, behind a new load balancer. "
            "configure-each(N): bench/fleet/launch.yml creates the flow's load balancer (playbooks/tasks/"
            "load_balancer.yml, as clone.yml does) and launches N instances from the Debian 12 base image, then "
            "playbooks/configure.yml (the webserver role, SQLite store; default forks 5) configures them (its "
            "last task waits until the app answers on each), then bench/fleet/register.yml registers them in the "
            "target group, waits until each is healthy there (ec2_launch, as for clones) and until the load "
            "balancer answers. bake+clone(N): the bake (one instance launched without a load balancer, configured"
            ", then playbooks/image.yml) plus playbooks/clone.yml with flow_clone_count=N, which creates the load "
            "balancer, launches the clones behind it, waits until each answers /healthz with its own instance ID "
            "and until the load balancer answers. Times are whole `ansible-playbook` runs (one run per size); "
            "sizes run one after another; between sizes the hosts are terminated and the load balancer, target "
            "group and security groups deleted, so that each size creates its own. PSS: every process "
            "of the hosts (nspawn, systemd, sshd, nginx, gunicorn, ...) once they serve, per host. configure-each"
            " stops where it would pass "
            f"{EACH_LIMIT_S // 60} minutes. CPU per configured host: the CPU seconds the machine spent busy while "
            "configure.yml ran, per host, split into the controller's (ansible-playbook and its workers) and the "
            "rest (the hosts' apt, the modules' Python, the app, and the sandbox's API); on 2 cores, configuring "
            "N hosts at once cannot take less than N x that / 2."
        ),
        "text": text,
        "targets": targets,
    }
