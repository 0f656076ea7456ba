"""ami_retire over a family of images in 4 regions with thousands of instances, launch template versions,
launch configurations and SSM image parameters naming some of them (a local moto server).

    python bench/run.py --cases ami_retire --replace-in bench/RESULTS.md

What it measures: one `bakery.ec2.ami_retire` task (keep 3, 4 regions in parallel) on a moto server on 127.0.0.1
(with the sandbox's moto gaps, for SSM's `DataType` filter), for two sizes of the family: 150 and 500 images per
region (600 and 2,000 in all), with the same users in both: 1,250 instances per region (5,000; 1,000 from the
newest image, 250 from 50 old ones, a fifth of those stopped), 50 launch template versions per region (200: 5
templates of 10 versions, each naming an old image), 5 launch configurations and 12 SSM parameters of data type
`aws:ec2:image` per region. Each size runs in check mode (what a dry run costs: finding the family, its users,
and asking whether each image to retire is shared), then for real (`deprecate_superseded` and `protect_newest`
off: moto has no API for them), then again (nothing left to do). API calls are counted at the endpoint by action
(a counting proxy); "finding users" is DescribeInstances, DescribeLaunchTemplates, DescribeLaunchTemplateVersions,
DescribeLaunchConfigurations, DescribeParameters and GetParameters. moto is not EC2: the times show the module's
own cost and the shape of its calls, not AWS's latency.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import boto3
import cases
import harness
from harness import HERE, REPO, CountingProxy, base_env, fmt_calls, run_playbook

sys.path.insert(0, str(REPO / "tests" / "integration"))
from moto_images import ImageCatalogue

ACCOUNT = "123456789012"  # moto's account: the images are the caller's own ("self")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
SIZES = (150, 500)  # images per region (at least 120 + KEEP: the users name 120 old images of each region)
KEEP = 3
USED_BY_INSTANCES = 50  # old images per region that instances use (5 instances each)
INSTANCES_FROM_NEWEST = 1000
TEMPLATES, VERSIONS = 5, 10
CONFIGURATIONS = 5
PARAMETERS = 12
LOOKUPS = (
    "DescribeInstances",
    "DescribeLaunchTemplates",
    "DescribeLaunchTemplateVersions",
    "DescribeLaunchConfigurations",
    "DescribeParameters",
    "GetParameters",
)


def catalogue(size: int) -> list[dict]:
    """``size`` private images of the account named bench-web-N, one a day, oldest first (moto loads them in every
    region)."""
    images = ImageCatalogue(first_serial=0x20000)
    for n in range(size):
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_700_000_000 + n * 86400))
        images.add(ACCOUNT, f"bench-web-{n:04d}", "x86_64", created)["public"] = False
    return images.images


def client(service: str, region: str, url: str):
    keys = {"aws_access_key_id": "AKIABENCH", "aws_secret_access_key": "bench-secret"}  # moto checks nothing
    return boto3.client(service, region_name=region, endpoint_url=url, **keys)


def populate(url: str, images: list[dict]) -> dict:
    """The users of old images in every region, made straight on moto (not counted); what the run must find."""
    old = [img["ami_id"] for img in images[:-KEEP]]  # oldest first
    newest = images[-1]["ami_id"]
    users = set()
    for region in REGIONS:
        ec2 = client("ec2", region, url)
        for _batch in range(0, INSTANCES_FROM_NEWEST, 250):
            ec2.run_instances(ImageId=newest, InstanceType="t3.micro", MinCount=250, MaxCount=250)
        for n, image_id in enumerate(old[:USED_BY_INSTANCES]):
            made = ec2.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=5, MaxCount=5)
            if n % 5 == 0:
                ec2.stop_instances(InstanceIds=[i["InstanceId"] for i in made["Instances"]])
            users.add((region, image_id))
        named = iter(old[USED_BY_INSTANCES:])
        for t in range(TEMPLATES):
            image_id = next(named)
            template = ec2.create_launch_template(
                LaunchTemplateName=f"bench-{t}", LaunchTemplateData={"ImageId": image_id}
            )["LaunchTemplate"]["LaunchTemplateId"]
            users.add((region, image_id))
            for _v in range(VERSIONS - 1):
                image_id = next(named)
                ec2.create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"ImageId": image_id})
                users.add((region, image_id))
        autoscaling = client("autoscaling", region, url)
        for c in range(CONFIGURATIONS):
            image_id = next(named)
            autoscaling.create_launch_configuration(
                LaunchConfigurationName=f"bench-{c}", ImageId=image_id, InstanceType="t3.micro"
            )
            users.add((region, image_id))
        ssm = client("ssm", region, url)
        for p in range(PARAMETERS):
            image_id = next(named)
            ssm.put_parameter(Name=f"/bench/{p}/image-id", Value=image_id, Type="String", DataType="aws:ec2:image")
            users.add((region, image_id))
    return {"in_use": len(users), "retire": len(REGIONS) * len(old) - len(users)}


def one_size(size: int, workdir: Path) -> dict:
    images = catalogue(size)
    amis = workdir / f"amis-{size}.json"
    amis.write_text(json.dumps(images))
    env_moto = {"MOTO_AMIS_PATH": str(amis), "AWS_ACCESS_KEY_ID": "AKIABENCH", "AWS_SECRET_ACCESS_KEY": "bench"}
    with moto_with_gaps(env_moto, workdir) as upstream:
        cases.log(f"ami_retire: {size * len(REGIONS):,} images, populating users on moto")
        want = populate(upstream, images)
        proxy = CountingProxy(upstream)
        env = base_env(proxy.url, workdir)
        extra = {"bench_name": "bench-web-*", "bench_keep": KEEP, "bench_regions": list(REGIONS)}
        out = {"size": size, "want": want, "runs": {}}
        for label, check in (("check mode", True), ("real run", False), ("rerun", False)):
            mark = proxy.mark()
            playbook = HERE / "modules" / "ami_retire.yml"
            res = run_playbook("ours", playbook, env, workdir, {**extra, "bench_check": check})
            task = res.task("Retire")
            calls = proxy.counts(mark)
            with proxy.lock:
                spent = {}
                for _t, action, seconds in proxy.calls[mark:]:
                    spent[action] = spent.get(action, 0.0) + seconds
            report = next(line for line in res.output.splitlines() if "BENCH images=" in line)
            out["runs"][label] = {
                "seconds": task["end"] - task["start"],
                "wall": res.wall,
                "calls": calls,
                "report": report.split("BENCH ", 1)[1].strip().rstrip('"'),
                "endpoint": sum(spent.values()),
            }
            slowest = ", ".join(f"{a} {t:.1f} s" for a, t in sorted(spent.items(), key=lambda kv: -kv[1])[:4])
            cases.log(f"ami_retire {size}/region {label}: {task['end'] - task['start']:.2f} s, {fmt_calls(calls)}")
            cases.log(f"  moto's time answering: {sum(spent.values()):.1f} s ({slowest})")
        proxy.close()
    return out


class moto_with_gaps:
    """A moto server on a free 127.0.0.1 port with sandbox/moto_gaps.py applied (as the integration tests run it)."""

    def __init__(self, env: dict, workdir: Path):
        self.env, self.workdir = env, workdir

    def __enter__(self) -> str:
        import subprocess
        import urllib.request

        port = cases.free_port()
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from sandbox import moto_gaps; moto_gaps.apply(); "
            "from moto.server import main; main(sys.argv[2:])"
        )
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir), **self.env}
        self.log = open(self.workdir / "moto.log", "w")  # closed in __exit__
        self.proc = subprocess.Popen(
            [str(harness.VENV / "python"), "-c", code, str(REPO), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()  # noqa: S310 - 127.0.0.1
                return url
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def lookups(calls: dict) -> int:
    return sum(calls.get(action, 0) for action in LOOKUPS)


def case_ami_retire(sizes=SIZES) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-retire-") as tmp:
        results = [one_size(size, Path(tmp)) for size in sizes]
    rows = []
    for r in results:
        for label, run in r["runs"].items():
            rows.append(
                (
                    f"{r['size'] * len(REGIONS):,}",
                    label,
                    f"{run['seconds']:.2f}",
                    f"{run['endpoint']:.2f}",
                    lookups(run["calls"]),
                    sum(run["calls"].values()),
                    fmt_calls(run["calls"]),
                    run["report"],
                )
            )
    head = "| images | run | task (s) | moto (s) | finding users: calls | all calls | calls by action | result |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    small, big = results[0], results[-1]
    grow_images = big["size"] / small["size"]
    grow_lookups = lookups(big["runs"]["check mode"]["calls"]) / max(1, lookups(small["runs"]["check mode"]["calls"]))
    expected = "; ".join(
        f"{r['size'] * len(REGIONS):,} images: {r['want']['retire']} to retire, {r['want']['in_use']} in use"
        for r in results
    )
    text = "\n".join(lines) + (
        f"\n\nFrom {small['size'] * len(REGIONS):,} to {big['size'] * len(REGIONS):,} images ({grow_images:.0f}x), "
        f"the calls that find users grew {grow_lookups:.2f}x (the DescribeInstances requests of 200 image IDs); the "
        "calls that grow with images are those made for each image to retire: DescribeImageAttribute (is it "
        "shared?), DeregisterImage and DeleteSnapshot. The real run finds users twice: once to judge, and again "
        "right before it deregisters, for the images about to go (what started to use one since is kept and "
        f"reported). Expected: {expected}."
    )
    big_check = big["runs"]["check mode"]
    images_total = big["size"] * len(REGIONS)
    return {
        "text": text,
        "targets": [
            (
                f"ami_retire: users of {images_total:,} images found in calls per page, not per image",
                lookups(big_check["calls"]) <= images_total / 20 and grow_lookups < grow_images,
                f"{lookups(big_check['calls'])} calls find the users of {images_total:,} images in 4 regions "
                f"(5,000 instances, 200 launch template versions); {grow_lookups:.2f}x the calls for "
                f"{grow_images:.0f}x the images",
            ),
            (
                "ami_retire: a rerun with nothing to retire makes no mutating call",
                harness.only_reads(big["runs"]["rerun"]["calls"]) and "changed=False" in big["runs"]["rerun"]["report"],
                f"{fmt_calls(big['runs']['rerun']['calls'])}; {big['runs']['rerun']['seconds']:.2f} s",
            ),
        ],
    }
