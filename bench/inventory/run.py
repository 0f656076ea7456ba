"""Inventory benchmark: bakery.ec2.instances vs amazon.aws.aws_ec2 vs the boto3 floor, on one stub endpoint.

Each size starts bench/inventory/stub.py on 127.0.0.1 with pre-rendered pages and a delay per call,
then runs, alternating, ``ansible-inventory -i CONFIG --graph`` with our plugin (project virtualenv),
the same with aws_ec2 (the ``ansible`` package in the benchmark virtualenv) and floor.py (boto3 paginating
the same pages, nothing else), and reports medians, min-max, ratios and peak memory (max RSS).

    python bench/inventory/run.py --runs 5 --output bench/RESULTS.md     # make bench-inventory
    python bench/inventory/run.py --smoke                                # make bench-smoke (< 1 min)

At 100,000 instances in 16 regions only ours runs: aws_ec2 would take about a quarter of an hour per run, and
the floor (regions one after another through botocore's parser) about four minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / ".venv" / "bin"
BENCH_VENV = REPO / ".venv-bench" / "bin"
HOST_RE = re.compile(r"\bi-[0-9a-f]{17}\b")
sys.path.insert(0, str(HERE.parent))
from cases import REGIONS  # the sixteen regions of the benchmarks

SIZES = {
    "1k-1region": (1000, ["us-east-1"]),
    "10k-4regions": (10000, ["us-east-1", "eu-west-1", "eu-central-1", "ap-south-1"]),
    "100k-16regions": (100000, list(REGIONS)),
}
ALL_CONTENDERS = ["ours", "aws_ec2", "floor"]
CONTENDERS = {"100k-16regions": ["ours"]}
KEYED = [
    {"key": "ec2_tags.Role", "prefix": "role"},
    {"key": "ec2_tags.Env", "prefix": "env"},
    {"key": "instance_type", "prefix": "type"},
    {"key": "placement.availability_zone", "prefix": "az"},
]


def configs(workdir, regions):
    """Equivalent configurations: same filters, hostnames, groups and ansible_host."""
    ours = {
        "plugin": "bakery.ec2.instances",
        "regions": regions,
        "hostnames": ["instance-id"],
        "keyed_groups": KEYED,
        "groups": {"aws_ec2": True},  # aws_ec2 puts every host into this group
    }
    theirs = {
        "plugin": "amazon.aws.aws_ec2",
        "regions": regions,
        "filters": {"instance-state-name": "running"},
        "hostnames": ["instance-id"],
        "keyed_groups": [dict(k, key=k["key"].replace("ec2_tags.", "tags.")) for k in KEYED],
        "compose": {"ansible_host": "private_ip_address"},  # ours sets it by default
    }
    paths = {}
    for name, data, filename in (("ours", ours, "bench.instances.yml"), ("aws_ec2", theirs, "bench.aws_ec2.yml")):
        paths[name] = workdir / filename
        paths[name].write_text(json.dumps(data, indent=2))
    return paths


def start_stub(workdir, instances, regions, delay, lifetime):
    port_file = workdir / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "stub.py"),
            "--instances",
            str(instances),
            "--regions",
            ",".join(regions),
            "--delay",
            str(delay),
            "--port-file",
            str(port_file),
            "--lifetime",
            str(lifetime),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("stub endpoint did not start")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port_file.read_text()}"


def measure(cmd, env):
    """Run ``cmd``; return (seconds, peak RSS in MiB, stdout, CPU seconds (user + system))."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, text, usage.ru_utime + usage.ru_stime


def commands(paths, regions, contenders):
    cmds = {
        "ours": [str(VENV / "ansible-inventory"), "-i", str(paths["ours"]), "--graph"],
        "aws_ec2": [str(BENCH_VENV / "ansible-inventory"), "-i", str(paths["aws_ec2"]), "--graph"],
        "floor": [str(VENV / "python"), str(HERE / "floor.py"), ",".join(regions)],
    }
    return {name: cmds[name] for name in contenders}


def bench_size(label, instances, regions, runs, delay, contenders):
    results = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        workdir = Path(tmp)
        paths = configs(workdir, regions)
        stub, url = start_stub(workdir, instances, regions, delay, lifetime=3600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
        env.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="AKIABENCH",
            AWS_SECRET_ACCESS_KEY="bench-secret",  # noqa: S106 - the stub checks nothing
            AWS_DEFAULT_REGION="us-east-1",
            ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
            ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_LOCAL_TEMP=str(workdir),
            ANSIBLE_HOME=str(workdir / "home"),
        )
        cmds = commands(paths, regions, contenders)
        try:
            for run in range(runs):
                for name, cmd in cmds.items():  # alternating: one run of each in turn
                    run_env = env if name != "aws_ec2" else dict(env, ANSIBLE_COLLECTIONS_PATH="")
                    seconds, rss, out, cpu = measure(cmd, run_env)
                    seen = len(set(HOST_RE.findall(out))) if name != "floor" else int(out.split()[0])
                    if seen != instances:
                        raise RuntimeError(f"{name} saw {seen} instances, expected {instances}")
                    results[name].append((seconds, rss, cpu))
                    print(
                        f"{label} run {run + 1}/{runs} {name}: {seconds:.2f} s, {rss:.0f} MiB, {cpu:.1f} s CPU",
                        flush=True,
                    )
        finally:
            stub.terminate()
            stub.wait(timeout=30)
    return results, cmds


def summary(values):
    return statistics.median(values), min(values), max(values)


def machine():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )

    def version(python, code):
        try:
            return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "n/a"

    core = version(str(VENV / "python"), "import ansible.release as r; print(r.__version__)")
    peer = version(
        str(BENCH_VENV / "python"),
        "import json, ansible_collections.amazon.aws as a, pathlib; "
        "m = pathlib.Path(list(a.__path__)[0]) / 'MANIFEST.json'; "
        "print(json.loads(m.read_text())['collection_info']['version'])",
    )
    peer_core = version(str(BENCH_VENV / "python"), "import ansible.release as r; print(r.__version__)")
    boto = version(str(VENV / "python"), "import boto3; print(boto3.__version__)")
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {int(mem) // 1024} MiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; ours: ansible-core {core}, boto3 {boto}; "
        f"aws_ec2: amazon.aws {peer} on ansible-core {peer_core}"
    )


def report(all_results, runs, delay, command):
    lines = [
        "# Inventory benchmark",
        "",
        "`ansible-inventory -i CONFIG --graph` with bakery.ec2.instances (ours) and amazon.aws.aws_ec2, and the floor:",
        "boto3 paginating the same DescribeInstances pages and nothing else (regions one after another, as a",
        "plain script does). All three read the same stub endpoint on 127.0.0.1 (bench/inventory/stub.py:",
        f"pre-rendered pages of 1,000 realistic instances, {delay * 1000:.0f} ms delay per call), with equivalent",
        "configurations (keyed groups on two tags, instance type and zone; `hostnames: [instance-id]`;",
        "ansible_host from the private IP; every host in group aws_ec2). Runs alternate between contenders.",
        "At 100,000 instances in 16 regions only ours runs (aws_ec2 would take about a quarter of an hour a run).",
        "CPU = user + system time of the process; wall time also waits for the other work of a shared machine.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{command}` ({runs} runs of each; generated by it).",
        "",
        "| size | contender | wall median (s) | wall min-max (s) | CPU median (s) | peak RSS median (MiB) "
        "| ours vs it: time | ours vs it: memory |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, results in all_results.items():
        ours_time = statistics.median(v[0] for v in results["ours"])
        ours_mem = statistics.median(v[1] for v in results["ours"])
        for name, values in results.items():
            med, low, high = summary([v[0] for v in values])
            mem = statistics.median(v[1] for v in values)
            cpu = statistics.median(v[2] for v in values)
            ratio_t = (
                ""
                if name == "ours"
                else f"{med / ours_time:.1f}x faster"
                if med >= ours_time
                else f"{ours_time / med:.2f}x its time"
            )
            ratio_m = "" if name == "ours" else f"{ours_mem / mem:.2f}x its peak"
            cells = [label, name, f"{med:.2f}", f"{low:.2f}-{high:.2f}", f"{cpu:.1f}", f"{mem:.0f}", ratio_t, ratio_m]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.25)
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--output", help="write the Markdown report here")
    parser.add_argument("--notes", help="a Markdown file appended to the report (analysis)")
    parser.add_argument("--smoke", action="store_true", help="one quick run of ours and the floor at 1,000 instances")
    args = parser.parse_args()

    if args.smoke:
        results, _cmds = bench_size("smoke", 1000, ["us-east-1"], 1, 0.05, ["ours", "floor"])
        ours, floor = results["ours"][0][0], results["floor"][0][0]
        print(f"bench-smoke: ours {ours:.2f} s, floor {floor:.2f} s for 1,000 instances")
        return
    if not (BENCH_VENV / "ansible-inventory").exists():
        sys.exit(f"error: {BENCH_VENV} is missing; run make bench-inventory (it creates it)")
    all_results = {}
    for label in args.sizes.split(","):
        instances, regions = SIZES[label]
        all_results[label], _cmds = bench_size(
            label, instances, regions, args.runs, args.delay, CONTENDERS.get(label, ALL_CONTENDERS)
        )
    command = "python bench/inventory/run.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:] if not a.startswith("--output") and a != args.output
    )
    text = report(all_results, args.runs, args.delay, command.strip())
    if args.notes:
        text += "\n" + Path(args.notes).read_text()
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
