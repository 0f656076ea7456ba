"""Case 11, the image pipeline (playbooks/pipeline.yml): an up-to-date run, and a bake through rollout, step by step
beside the flow's steps.

    python bench/run.py --cases pipeline              # case 11 of make bench (sandbox started if needed)

What it measures: the flow (playbooks/flow.yml, SQLite store, 2 clones behind the load balancer) once, its summary's
seconds per step; then `pipeline.yml` right after it, up to date, 3 times (wall time of `ansible-playbook`, start to
end: what a daily scheduled job with nothing to do costs); then `pipeline.yml` with a role variable changed
(`webserver_app_title`), which bakes on a builder, proves the image on 1 canary, publishes it and rolls the 2 clones
onto it, its summary's seconds per step. The pipeline's bake (builder launch + configure + image) stands beside the
flow's launch + configure + image, its canary beside the flow's clone step (instances of the image, checked to serve).
"""

from __future__ import annotations

import contextlib
import re
import statistics
import tempfile
import time
from pathlib import Path

from app_sandbox import guest_endpoint
from cases import ec2_client, log, teardown_flow
from harness import REPO, Watcher, base_env, run_playbook

PLAYBOOKS = REPO / "playbooks"
INVENTORY = PLAYBOOKS / "inventory" / "bakery.instances.yml"
UP_TO_DATE_RUNS = 3
UP_TO_DATE_TARGET = 10.0  # seconds of wall time
SLOWER_ALLOWED = 1.2


def flow_steps(output: str) -> dict[str, float]:
    """The flow summary's seconds per step ("seconds       launch 21.0, configure 40.2, image 8.1, clone 12.3")."""
    line = re.search(r"seconds +((?:\w+ [0-9.]+(?:, )?)+)", output).group(1)
    return {step: float(value) for step, value in (part.split() for part in line.split(", "))}


def pipeline_steps(output: str) -> dict[str, float]:
    """The pipeline summary's seconds per step ("pipeline: bake 61.2 s: ...")."""
    return {step: float(value) for step, value in re.findall(r'"pipeline: (\w+) ([0-9.]+) s', output)}


def case_pipeline(url: str) -> dict:
    flow_name = f"bench-pipe-{int(time.time()) % 100000}"
    ec2 = ec2_client(url)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        env = dict(base_env(url, workdir), BENCH_SANDBOX="1", BAKERY_SANDBOX_GUEST_ENDPOINT=guest_endpoint())
        extra = {"flow_name": flow_name, "flow_store": "sqlite", "flow_key_path": str(workdir / "key")}

        def play(playbook: str, **more):
            return run_playbook("ours", PLAYBOOKS / playbook, env, workdir, dict(extra, **more), INVENTORY, 1800)

        try:
            flow = play("flow.yml", flow_hosts=f"flow_{flow_name.replace('-', '_')}:&role_source")
            steps = flow_steps(flow.output)
            log(f"pipeline: the flow in {flow.wall:.0f} s ({steps})")
            idle = []
            for _ in range(UP_TO_DATE_RUNS):
                run = play("pipeline.yml")
                assert '"pipeline: up to date"' in run.output, run.output[-3000:]
                idle.append(run.wall)
            log(f"pipeline: up to date in {', '.join(f'{s:.1f}' for s in idle)} s")
            baked = play("pipeline.yml", webserver_app_title="Staff Directory")
            assert "pipeline: baked and rolled out" in baked.output, baked.output[-3000:]
            ours = pipeline_steps(baked.output)
            log(f"pipeline: baked and rolled out in {baked.wall:.0f} s ({ours})")
        finally:
            teardown_flow(ec2, Watcher(url), flow_name)
            ssm = ec2_client(url, "ssm")
            with contextlib.suppress(ssm.exceptions.ParameterNotFound):
                ssm.delete_parameter(Name=f"/bakery/{flow_name}/image-id")
    return report(steps, idle, ours, baked.wall)


def report(flow: dict[str, float], idle: list[float], ours: dict[str, float], wall: float) -> dict:
    beside = {
        "bake": flow["launch"] + flow["configure"] + flow["image"],
        "canary": flow["clone"],
    }
    names = {"bake": "launch + configure + image", "canary": "clone"}
    lines = [
        f"Up to date, {len(idle)} runs: median {statistics.median(idle):.1f} s wall (min {min(idle):.1f}, "
        f"max {max(idle):.1f}).",
        "",
        f"Bake through rollout (2 clones), {wall:.0f} s wall:",
        "",
        "| step | pipeline (s) | the flow's step | flow (s) | pipeline / flow |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in ("resolve", "bake", "canary", "copy", "publish", "rollout"):
        seconds = ours.get(step, 0.0)
        if step in beside:
            lines.append(
                f"| {step} | {seconds:.1f} | {names[step]} | {beside[step]:.1f} | {seconds / beside[step]:.2f} |"
            )
        else:
            lines.append(f"| {step} | {seconds:.1f} | - | - | - |")
    slow = [s for s in beside if ours.get(s, 0.0) > SLOWER_ALLOWED * beside[s]]
    return {
        "flow": flow,
        "idle": idle,
        "steps": ours,
        "wall": wall,
        "text": "\n".join(lines),
        "targets": [
            (
                f"pipeline: up to date in <= {UP_TO_DATE_TARGET:.0f} s wall",
                statistics.median(idle) <= UP_TO_DATE_TARGET,
                f"median {statistics.median(idle):.1f} s",
            ),
            (
                "pipeline: no step slower than the flow's same step by more than 20 %",
                not slow,
                ", ".join(f"{s} {ours.get(s, 0.0):.1f} s vs {beside[s]:.1f} s" for s in beside),
            ),
        ],
    }
