"""Case 9, rolling the flow's clones onto a new image behind the load balancer: time against clone count, and the
latency a steady client sees meanwhile.

    python bench/run.py --cases rollout --rollout-clones 2,4,8     # case 9 of make bench (sandbox started if needed)

What it measures: one source host launched, configured and baked twice by the flow's playbooks (launch.yml,
configure.yml, image.yml as v1 and v2, SQLite store), then for each clone count N: clone.yml brings the clones behind
the load balancer to N (of the image they are on), and `playbooks/rollout.yml` replaces all N, one per batch
(rollout_batch_size 1), onto the other image, alternating v1 -> v2 -> v1. Time = the rollout's `ansible-playbook`
run, start to end. Meanwhile the probe (bench/probe.py) sends 20 GET /healthz a second through the load balancer, a
new connection each; a failure is any answer but 200 `status: ok`, a refused or reset connection, or a timeout (5 s).
Latency p50/p95/max is of its answered requests. Each batch waits for the target group's health check (interval
5 s, 2 passes), then for the old clone's draining (deregistration delay 10 s, shorter once it has no connection).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from app_sandbox import guest_endpoint
from cases import ec2_client, log, teardown_flow
from harness import REPO, Watcher, base_env, run_playbook, sandbox_keys
from probe import Probe

PLAYBOOKS = REPO / "playbooks"
INVENTORY = PLAYBOOKS / "inventory" / "bakery.instances.yml"
RATE = 20.0


def image_id(ec2, flow_name: str, version: int) -> str:
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [f"{flow_name}-web-v{version}"]}])
    return images["Images"][0]["ImageId"]


def sqlite_flow(url: str, workdir: Path, flow_name: str) -> tuple[dict, dict]:
    """The environment and extra vars of a flow of the bench's own on the sandbox: SQLite store (no shared store to
    set up), its key in ``workdir``, configure.yml on its source only."""
    env = dict(base_env(url, workdir), BENCH_SANDBOX="1", BAKERY_SANDBOX_GUEST_ENDPOINT=guest_endpoint())
    extra = {
        "flow_name": flow_name,
        "flow_store": "sqlite",
        "flow_key_path": str(workdir / "key"),
        "flow_hosts": f"flow_{flow_name.replace('-', '_')}:&role_source",
    }
    return env, extra


def case_rollout(url: str, counts: list[int]) -> dict:
    """Rows of (clones, rollout seconds, probe figures), the report's text and its target."""
    flow_name = f"bench-roll-{int(time.time()) % 100000}"
    ec2 = ec2_client(url)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        workdir = Path(tmp)
        env, extra = sqlite_flow(url, workdir, flow_name)

        def play(playbook: str, **more):
            return run_playbook("ours", PLAYBOOKS / playbook, env, workdir, dict(extra, **more), INVENTORY, 1800)

        try:
            started = time.perf_counter()
            for playbook in ("launch.yml", "configure.yml"):
                play(playbook)
            for version in (1, 2):
                play("image.yml", flow_image_version=version)
            images = {v: image_id(ec2, flow_name, v) for v in (1, 2)}
            log(f"rollout: source baked as v1 and v2 in {time.perf_counter() - started:.0f} s")
            for number, count in enumerate(counts):
                now, target = (1, 2) if number % 2 == 0 else (2, 1)
                play("clone.yml", flow_clone_count=count, flow_image_version=now)
                (balancer,) = [
                    lb
                    for lb in ec2_client(url, "elbv2").describe_load_balancers()["LoadBalancers"]
                    if lb["LoadBalancerName"] == f"{flow_name}-lb"
                ]
                ca = sandbox_keys().get("BAKERY_SANDBOX_CA")  # the flow's load balancer serves HTTPS
                probe = Probe(balancer["DNSName"], "/healthz", rate=RATE, limit=3600, ca=ca)
                probe.start()
                try:
                    run = play(
                        "rollout.yml", flow_clone_count=count, rollout_image_id=images[target], rollout_batch_size=1
                    )
                finally:
                    figures = probe.stop()
                rows.append({"clones": count, "seconds": run.wall, "to": f"v{now} -> v{target}", **figures})
                log(
                    f"rollout of {count} clones: {run.wall:.0f} s, {figures['requests']} requests, "
                    f"{figures['failures']} failed, p50 {figures['p50_ms']:.1f} ms, max {figures['max_ms']:.0f} ms"
                )
        finally:
            teardown_flow(ec2, Watcher(url), flow_name)
    return report(rows)


def report(rows: list[dict]) -> dict:
    lines = [
        "| clones | images | rollout (s) | per clone (s) | requests | req/s | failed | p50 ms | p95 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['clones']} | {r['to']} | {r['seconds']:.0f} | {r['seconds'] / r['clones']:.1f} | {r['requests']} "
            f"| {r['rate']:.1f} | {r['failures']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.0f} |"
        )
    failed = sum(r["failures"] for r in rows)
    steady = all(r["rate"] >= 10 for r in rows)
    return {
        "rows": rows,
        "text": "\n".join(lines),
        "targets": [
            (
                "rollout: zero failed requests through the load balancer, at >= 10 requests/s",
                failed == 0 and steady,
                f"{failed} failed of {sum(r['requests'] for r in rows)} "
                f"({min(r['rate'] for r in rows):.1f} req/s at least)",
            )
        ],
    }
