"""Benchmark cases 2-5: ours against amazon.aws, alternating runs, API calls counted at the endpoint.

Each case returns a dict: ``rows`` (one per contender: label, times, calls, notes), ``targets`` (name, met,
reason) and ``notes``. bench/run.py runs them and writes bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import harness
from harness import (
    HERE,
    REPO,
    VENV,
    CountingProxy,
    Watcher,
    base_env,
    book,
    fmt_calls,
    only_reads,
    run_playbook,
    summary,
)

sys.path.insert(0, str(REPO / "tests" / "integration"))
from moto_images import ImageCatalogue  # the one builder of moto image catalogues, shared with the tests

DEBIAN = "136693071363"
CONTENDERS = ("ours", "peer")


def log(msg):
    print(f"[bench] {msg}", flush=True)


def stats_row(values, fmt="{:.2f}"):
    med, low, high = summary(values)
    return {"median": med, "min": low, "max": high, "text": f"{fmt.format(med)} ({fmt.format(low)}-{fmt.format(high)})"}


def ratio(ours, peer):
    return ours / peer if peer else float("nan")


# --------------------------------------------------------------------------------------- case 2: ami_find


def image_catalogue(size: int, seed: int = 9) -> tuple[list[dict], str]:
    """``size`` images of several owners, names and architectures; returns them and the expected pick."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible catalogue, not a secret
    owners = {
        DEBIAN: ["debian-11-{arch}-{stamp}", "debian-12-{arch}-{stamp}", "debian-13-{arch}-{stamp}"],
        "099720109477": ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-{arch}-server-{stamp}"],
        "137112412989": ["al2023-ami-2023.{stamp}-kernel-6.1-{arch}"],
        "679593333241": ["marketplace-app-{stamp}-{arch}"],
        "123456789012": ["bakery-web-{stamp}-{arch}"],
    }
    arches = {"x86_64": "amd64", "arm64": "arm64"}
    catalogue = ImageCatalogue(first_serial=0x10000)
    best = (None, "")
    for serial in range(size):
        owner = rng.choice(list(owners))
        arch = rng.choice(list(arches))
        day = rng.randrange(0, 5 * 365)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_600_000_000 + day * 86400 + serial))
        stamp = created[:10].replace("-", "") + f"-{serial}"
        name = rng.choice(owners[owner]).format(arch=arches[arch], stamp=stamp)
        ami = catalogue.add(owner, name, arch, created)["ami_id"]
        if owner == DEBIAN and name.startswith("debian-12-amd64-") and created > best[1]:
            best = (ami, created)
    return catalogue.images, best[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(amis_path: Path, workdir: Path):
    port = free_port()
    env = {"MOTO_AMIS_PATH": str(amis_path), "PATH": "/usr/bin:/bin", "HOME": str(workdir)}
    with open(workdir / "moto.log", "w") as logf:
        proc = subprocess.Popen(
            [str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=logf, stderr=logf
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()  # noqa: S310 - 127.0.0.1
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Sixteen commercial regions (the default-enabled ones), searched by both contenders.
REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
)


def case_ami_find(runs: int, size: int, regions: tuple[str, ...] = REGIONS) -> dict:
    """Case 2: newest Debian 12 x86_64 image of Debian's account in each of ``regions`` (16), on moto."""
    images, expected = image_catalogue(size)
    matching = sum(1 for i in images if i["owner_id"] == DEBIAN and i["name"].startswith("debian-12-amd64-"))
    report = " ".join(f"{region}={expected}" for region in sorted(regions))
    with tempfile.TemporaryDirectory(prefix="bench-ami-") as tmp:
        workdir = Path(tmp)
        amis = workdir / "amis.json"
        amis.write_text(json.dumps(images))
        with moto_server(amis, workdir) as upstream:
            proxy = CountingProxy(upstream)
            env = base_env(proxy.url, workdir)
            extra = {
                "bench_owner": DEBIAN,
                "bench_name": "debian-12-amd64-*",
                "bench_architecture": "x86_64",
                "bench_regions": list(regions),
            }
            books = (HERE / "modules" / "ami_find.yml", HERE / "modules" / "ami_find_peer.yml")
            # Warm-up (not measured): moto loads the catalogue of each region on its first call there; both
            # contenders load their code.
            for who in CONTENDERS:
                run_playbook(who, book(who, *books), env, workdir, extra)
            results = {who: {"wall": [], "op": [], "calls": None, "endpoint": []} for who in CONTENDERS}
            for run in range(runs):
                for who in CONTENDERS:
                    mark = proxy.mark()
                    res = run_playbook(who, book(who, *books), env, workdir, extra)
                    if f"BENCH {report}" not in res.output:
                        raise RuntimeError(f"{who} did not pick {expected} in every region:\n{res.output[-2000:]}")
                    op = res.task("Pick")["end"] - res.task("Find")["start"]
                    results[who]["wall"].append(res.wall)
                    results[who]["op"].append(op)
                    results[who]["calls"] = proxy.counts(mark)
                    results[who]["endpoint"].append(proxy.endpoint_seconds(mark))
                    log(f"ami_find run {run + 1}/{runs} {who}: task {op:.2f} s, playbook {res.wall:.2f} s")
            proxy.close()
    rows = []
    for who in CONTENDERS:
        rows.append(
            {
                "contender": "bakery.ec2.ami_find `regions:` (one task)"
                if who == "ours"
                else "amazon.aws.ec2_ami_info looped over the regions + sort + last",
                "who": who,
                "op": stats_row(results[who]["op"]),
                "wall": stats_row(results[who]["wall"]),
                "calls": fmt_calls(results[who]["calls"]),
                "endpoint": summary(results[who]["endpoint"])[0],
            }
        )
    speed = summary(results["peer"]["op"])[0] / summary(results["ours"]["op"])[0]
    return {
        "title": f"ami_find: newest Debian 12 x86_64 of owner {DEBIAN} in {len(regions)} regions (moto)",
        "setup": f"{len(regions)} regions ({', '.join(regions)}), each with the same {size:,} images of 5 owners, "
        f"2 architectures, Debian 11/12/13, Ubuntu, AL2023 and others (moto loads one catalogue into every "
        f"region, so the IDs are the same in each); {matching:,} match owner + name + architecture per region; "
        f"both contenders pick {expected} in every region. Ours: one `ami_find` task with `regions:`; the peer: "
        "one `ec2_ami_info` task looped over the regions (`loop:` with `region: item`), then the newest per region "
        "in Jinja.",
        "size": size,
        "rows": rows,
        "ratio": ratio(summary(results["ours"]["op"])[0], summary(results["peer"]["op"])[0]),
        "targets": [
            (
                f"ami_find `regions:` ≥ 8x faster ({len(regions)} regions)",
                speed >= 8,
                f"{speed:.1f}x on the operation (find + pick tasks); "
                f"{summary(results['peer']['wall'])[0] / summary(results['ours']['wall'])[0]:.2f}x on the whole "
                "ansible-playbook run",
            )
        ],
    }


# --------------------------------------------------------------------------------------- sandbox cases

SANDBOX_URL = "http://127.0.0.1:4700"


def sandbox_running(url: str = SANDBOX_URL) -> bool:
    try:
        urllib.request.urlopen(url + "/_sandbox/status", timeout=5).close()  # noqa: S310 - 127.0.0.1
        return True
    except OSError:
        return False


@contextmanager
def sandbox():
    """The running sandbox, or one started here (and stopped here: only then)."""
    started = False
    if not sandbox_running():
        log("starting the sandbox (python -m sandbox up)")
        subprocess.run([str(VENV / "python"), "-m", "sandbox", "up"], cwd=REPO, check=True, timeout=900)
        started = True
    else:
        log("reusing the running sandbox")
    try:
        yield SANDBOX_URL
    finally:
        if started:
            log("stopping the sandbox this run started")
            subprocess.run([str(VENV / "python"), "-m", "sandbox", "down"], cwd=REPO, check=False, timeout=300)


def ec2_client(url: str, service: str = "ec2"):
    import boto3  # the project virtualenv's; imported here so that case 2 runs without it

    keys = harness.sandbox_keys(admin=True)  # setting up and observing: the sandbox's administrator
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )


def base_image(ec2) -> str:
    images = ec2.describe_images(
        Owners=[DEBIAN],
        Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}, {"Name": "architecture", "Values": ["x86_64"]}],
    )["Images"]
    return max(images, key=lambda i: i["CreationDate"])["ImageId"]


def settled(call, timeout: float = 10, **kwargs):
    """``call`` once what the bench just created is visible (the sandbox, like EC2, says ``*.NotFound`` a while)."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(**kwargs)
        except ClientError as err:
            if not err.response["Error"]["Code"].endswith(".NotFound") or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def instances_named(ec2, name: str) -> list[str]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


def terminate(ec2, watcher: Watcher, ids: list[str], timeout: float = 120) -> None:
    """Terminate ``ids`` and wait until the sandbox has removed their hosts (so runs do not overlap)."""
    if not ids:
        return
    ec2.terminate_instances(InstanceIds=ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts = watcher.status()["hosts"]
        if not any(hosts.get(i, {}).get("state") not in (None, "terminated") for i in ids):
            return
        time.sleep(0.2)
    raise RuntimeError(f"instances {ids} were not removed within {timeout} s")


def key_pair(ec2, workdir: Path, name: str) -> None:
    key = workdir / "bench-key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    from botocore.exceptions import ClientError

    try:
        ec2.delete_key_pair(KeyName=name)
    finally:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=(workdir / "bench-key.pub").read_bytes())
    # EC2 is eventually consistent (so is the sandbox): the contenders are timed from when the key pair is visible.
    deadline = time.monotonic() + 120
    while True:
        try:
            if ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]:
                return
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvalidKeyPair.NotFound":
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"key pair {name} not visible within 120 s")
        time.sleep(0.25)


def op_summary(results, who):
    return {
        "op": stats_row(results[who]["op"]),
        "wall": stats_row(results[who]["wall"]),
        "overhead": stats_row(results[who]["overhead"]),
        "calls": fmt_calls(results[who]["calls"]),
        "rerun_calls": fmt_calls(results[who]["rerun_calls"]),
        "rerun": results[who]["rerun"],
        "rerun_reads_only": only_reads(results[who]["rerun_calls"]),
    }


def case_launch(runs: int, count: int, url: str) -> dict:
    """Case 3: launch ``count`` real hosts with wait, then rerun the same task (no-op)."""
    tag = f"{int(time.time()) % 100000}"
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp, Watcher(url) as watcher:
        workdir = Path(tmp)
        ec2 = ec2_client(url)
        key_name = f"bench-key-{tag}"
        key_pair(ec2, workdir, key_name)
        image = base_image(ec2)
        proxy = CountingProxy(url)
        env = dict(base_env(proxy.url, workdir), BENCH_SANDBOX="1")
        books = (HERE / "modules" / "launch.yml", HERE / "modules" / "launch_peer.yml")
        results = {w: {"wall": [], "op": [], "overhead": [], "calls": {}, "rerun_calls": {}} for w in CONTENDERS}
        try:
            for run in range(runs):
                for who in CONTENDERS:
                    name = f"bench-launch-{who}-{tag}-{run}"
                    extra = {
                        "bench_name": name,
                        "bench_count": count,
                        "bench_image_id": image,
                        "bench_key_name": key_name,
                    }
                    mark = proxy.mark()
                    res = run_playbook(who, book(who, *books), env, workdir, extra)
                    calls = proxy.counts(mark)
                    ids = instances_named(ec2, name)
                    try:
                        if len(ids) != count or any(i not in watcher.running for i in ids):
                            raise RuntimeError(f"{who}: expected {count} running instances, got {ids}")
                        task = res.task("Launch")
                        reached = max(watcher.reached(watcher.running[i], i) for i in ids)
                        mark = proxy.mark()
                        rerun = run_playbook(who, book(who, *books), env, workdir, extra, check=False)
                        rerun_calls = proxy.counts(mark)
                        rtask = rerun.task("Launch")
                        after = instances_named(ec2, name)
                    finally:
                        terminate(ec2, watcher, instances_named(ec2, name))
                    r = results[who]
                    r["wall"].append(res.wall)
                    r["op"].append(task["end"] - task["start"])
                    r["overhead"].append(task["end"] - reached)
                    r["calls"], r["rerun_calls"] = calls, rerun_calls
                    r["rerun"] = f"{rtask['status']}, changed={rtask['changed']}, {len(after)} instances" + (
                        f": {rtask['msg'][:120]}" if rtask["msg"] else ""
                    )
                    log(
                        f"launch run {run + 1}/{runs} {who}: task {task['end'] - task['start']:.2f} s, "
                        f"{task['end'] - reached:.2f} s after the last host ran; rerun {r['rerun']}"
                    )
        finally:
            proxy.close()
            ec2.delete_key_pair(KeyName=key_name)
    return wait_case_result(
        results,
        title=f"ec2_launch vs amazon.aws.ec2_instance: launch {count} real hosts with wait (sandbox)",
        setup=f"{count} x t3.micro from the newest Debian 12 base image, key pair, default subnet and group; "
        "state reached = the last host reading `running` in /_sandbox/status (polled every 50 ms), or later when "
        "the API did not show it yet then (the sandbox's eventual-consistency window after RunInstances, up to 2 s): "
        "no wait can end before EC2 shows the state.",
        names=("bakery.ec2.ec2_launch", "amazon.aws.ec2_instance"),
    )


def images_named(ec2, name: str) -> list[str]:
    return [
        i["ImageId"]
        for i in ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    ]


def case_image(runs: int, url: str) -> dict:
    """Case 4: image a running host (no_reboot) with wait, then rerun the same task."""
    tag = f"{int(time.time()) % 100000}"
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp, Watcher(url) as watcher:
        workdir = Path(tmp)
        ec2 = ec2_client(url)
        key_name = f"bench-key-{tag}"
        key_pair(ec2, workdir, key_name)
        source = settled(
            ec2.run_instances,
            ImageId=base_image(ec2),
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            KeyName=key_name,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"bench-src-{tag}"}]}],
        )["Instances"][0]["InstanceId"]
        proxy = CountingProxy(url)
        env = dict(base_env(proxy.url, workdir), BENCH_SANDBOX="1")
        books = (HERE / "modules" / "image.yml", HERE / "modules" / "image_peer.yml")
        results = {w: {"wall": [], "op": [], "overhead": [], "calls": {}, "rerun_calls": {}} for w in CONTENDERS}
        made: list[str] = []
        try:
            ec2.get_waiter("instance_running").wait(InstanceIds=[source], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
            for run in range(runs):
                for who in CONTENDERS:
                    name = f"bench-image-{who}-{tag}-{run}"
                    extra = {"bench_name": name, "bench_instance_id": source}
                    mark = proxy.mark()
                    res = run_playbook(who, book(who, *books), env, workdir, extra)
                    calls = proxy.counts(mark)
                    ids = images_named(ec2, name)
                    made += ids
                    if len(ids) != 1:
                        raise RuntimeError(f"{who}: expected one image {name}, got {ids}")
                    task = res.task("Image")
                    # An image pending for less than the watcher's period is taken as available when CreateImage
                    # returned (an upper bound on the overhead).
                    seen = watcher.available.get(ids[0]) or proxy.answered("CreateImage", mark)
                    reached = watcher.reached(seen, ids[0])
                    mark = proxy.mark()
                    rerun = run_playbook(who, book(who, *books), env, workdir, extra, check=False)
                    rerun_calls = proxy.counts(mark)
                    rtask = rerun.task("Image")
                    after = images_named(ec2, name)
                    made += [i for i in after if i not in made]
                    r = results[who]
                    r["wall"].append(res.wall)
                    r["op"].append(task["end"] - task["start"])
                    r["overhead"].append(task["end"] - reached)
                    r["calls"], r["rerun_calls"] = calls, rerun_calls
                    r["rerun"] = f"{rtask['status']}, changed={rtask['changed']}, {len(after)} image(s) named so" + (
                        f": {rtask['msg'][:160]}" if rtask["msg"] else ""
                    )
                    log(
                        f"image run {run + 1}/{runs} {who}: task {task['end'] - task['start']:.2f} s, "
                        f"{task['end'] - reached:.2f} s after available; rerun {r['rerun']}"
                    )
        finally:
            proxy.close()
            for image in made:
                try:
                    ec2.deregister_image(ImageId=image)
                except Exception as exc:
                    log(f"could not deregister {image}: {exc}")
            terminate(ec2, watcher, [source])
            ec2.delete_key_pair(KeyName=key_name)
    return wait_case_result(
        results,
        title="ami_from_instance vs amazon.aws.ec2_ami: image a running host with wait (sandbox)",
        setup="one Debian 12 host, imaged with each module's defaults (the sandbox stops the host, copies its "
        "disk, starts it again); state reached = the image leaving `pending` in /_sandbox/status (polled every "
        "50 ms), or later when the API did not show the image yet then (its eventual-consistency window after "
        "CreateImage, up to 2 s).",
        names=("bakery.ec2.ami_from_instance", "amazon.aws.ec2_ami"),
    )


def wait_case_result(results, title, setup, names):
    rows = []
    for who, label in zip(CONTENDERS, names, strict=True):
        rows.append(dict(op_summary(results, who), contender=label, who=who))
    ours_over = summary(results["ours"]["overhead"])[0]
    peer_over = summary(results["peer"]["overhead"])[0]
    ours_reads = only_reads(results["ours"]["rerun_calls"])
    return {
        "title": title,
        "setup": setup,
        "rows": rows,
        "ratio": ratio(summary(results["ours"]["op"])[0], summary(results["peer"]["op"])[0]),
        "targets": [
            (
                f"{names[0]}: wait overhead after the state is reached ≤ 2 s",
                max(results["ours"]["overhead"]) <= 2,
                f"median {ours_over:.2f} s, worst {max(results['ours']['overhead']):.2f} s "
                f"(peer: median {peer_over:.2f} s)",
            ),
            (
                f"{names[0]}: no-op rerun makes read calls only",
                ours_reads,
                f"rerun calls: {fmt_calls(results['ours']['rerun_calls'])}",
            ),
        ],
    }


# --------------------------------------------------------------------------------------- case 5: the flow


def teardown_flow(ec2, watcher: Watcher, flow_name: str) -> None:
    """Remove what one flow run made (by its BakeryFlow tag and names), through the API, not through Ansible."""
    autoscaling = ec2_client(SANDBOX_URL, "autoscaling")  # flow_fleet asg: the group first, or it launches again
    if autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{flow_name}-web"])["AutoScalingGroups"]:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=f"{flow_name}-web", ForceDelete=True)
    templates = ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [f"{flow_name}-web"]}]
    )["LaunchTemplates"]
    for template in templates:
        ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:BakeryFlow", "Values": [flow_name]}]
    )
    ids = [
        i["InstanceId"]
        for page in pages
        for r in page["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    terminate(ec2, watcher, ids)
    for image in ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:BakeryFlow", "Values": [flow_name]}])[
        "Images"
    ]:
        # image.yml's ami_retire protects the newest image of the flow from deregistration
        if image.get("DeregistrationProtection", "disabled") != "disabled":
            ec2.disable_image_deregistration_protection(ImageId=image["ImageId"])
        ec2.deregister_image(ImageId=image["ImageId"])
    delete_load_balancer(flow_name)
    delete_flow_groups(ec2, flow_name)
    ec2.delete_key_pair(KeyName=flow_name)


def delete_store(flow_name: str) -> None:
    """The flow's shared store (playbooks/tasks/store.yml): instance profile, role, bucket (emptied), table."""
    iam, s3, ddb = (ec2_client(SANDBOX_URL, service) for service in ("iam", "s3", "dynamodb"))
    role = f"{flow_name}-webserver"
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.remove_role_from_instance_profile(InstanceProfileName=role, RoleName=role)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.delete_instance_profile(InstanceProfileName=role)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role, PolicyName=policy)
        iam.delete_role(RoleName=role)
    for bucket in s3.list_buckets()["Buckets"]:
        if bucket["Name"].startswith(f"{flow_name}-photos"):
            for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
                s3.delete_object(Bucket=bucket["Name"], Key=item["Key"])
            s3.delete_bucket(Bucket=bucket["Name"])
    with contextlib.suppress(ddb.exceptions.ResourceNotFoundException):
        ddb.delete_table(TableName=f"{flow_name}-employees")


def delete_flow_groups(ec2, flow_name: str) -> None:
    """The flow's security groups: the instances' (source, clone, the Auto Scaling group's) first, as one of their
    rules names the load
    balancer's group, then the load balancer's."""
    for name in (f"{flow_name}-source", f"{flow_name}-clone", f"{flow_name}-web", f"{flow_name}-lb"):
        groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        for group in groups:
            settled_delete(ec2.delete_security_group, GroupId=group["GroupId"])


def delete_load_balancer(flow_name: str) -> None:
    """The flow's load balancer (<flow_name>-lb) and target group (<flow_name>-web), where clone.yml made them."""
    elb = ec2_client(SANDBOX_URL, "elbv2")
    for balancer in elb.describe_load_balancers()["LoadBalancers"]:
        if balancer["LoadBalancerName"] == f"{flow_name}-lb":
            elb.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    for group in elb.describe_target_groups()["TargetGroups"]:
        if group["TargetGroupName"] == f"{flow_name}-web":
            settled_delete(elb.delete_target_group, TargetGroupArn=group["TargetGroupArn"])


def settled_delete(call, timeout: float = 60, **kwargs) -> None:
    """``call`` once nothing uses the resource any more (EC2 and ELB say so for a while after its user is gone)."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            call(**kwargs)
            return
        except ClientError as err:
            if (
                err.response["Error"]["Code"] not in ("DependencyViolation", "ResourceInUse")
                or time.monotonic() > deadline
            ):
                raise
        time.sleep(1)


def case_flow(runs: int, url: str, smoke: bool = False) -> dict:
    """Case 5: playbooks/flow.yml against bench/peer/flow.yml: launch, configure (role), image, clone, verify."""
    tag = f"{int(time.time()) % 100000}"
    books = {
        "ours": (REPO / "playbooks" / "flow.yml", REPO / "playbooks" / "inventory" / "bakery.instances.yml"),
        "peer": (HERE / "peer" / "flow.yml", HERE / "peer" / "inventory" / "bench.aws_ec2.yml"),
    }
    results = {w: {"wall": [], "calls": {}} for w in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp, Watcher(url) as watcher:
        workdir = Path(tmp)
        ec2 = ec2_client(url)
        proxy = CountingProxy(url)
        env = dict(base_env(proxy.url, workdir), BENCH_SANDBOX="1")
        try:
            for run in range(runs):
                for who in CONTENDERS:
                    flow_name = f"bench-{who}-{tag}-{run}"
                    # The peer's flow keeps the app's SQLite file: ours too, so both do the same work.
                    extra = {
                        "flow_name": flow_name,
                        "flow_key_path": str(workdir / f"key-{flow_name}"),
                        "flow_store": "sqlite",
                    }
                    playbook, inventory = books["ours" if harness.STAND_IN else who]
                    if smoke:
                        res = run_playbook(who, playbook, env, workdir, extra, inventory=inventory, syntax_only=True)
                        results[who]["wall"].append(res.wall)
                        log(f"flow smoke {who}: syntax check passed")
                        continue
                    mark = proxy.mark()
                    try:
                        res = run_playbook(who, playbook, env, workdir, extra, inventory=inventory, timeout=900)
                    finally:
                        teardown_flow(ec2, watcher, flow_name)
                    results[who]["wall"].append(res.wall)
                    results[who]["calls"] = proxy.counts(mark)
                    log(
                        f"flow run {run + 1}/{runs} {who}: {res.wall:.1f} s, "
                        f"{sum(results[who]['calls'].values())} calls"
                    )
        finally:
            proxy.close()
    rows = [
        {
            "contender": label,
            "who": who,
            "wall": stats_row(results[who]["wall"], "{:.1f}"),
            "calls": fmt_calls(results[who]["calls"]),
        }
        for who, label in zip(
            CONTENDERS, ("playbooks/flow.yml (bakery.ec2)", "bench/peer/flow.yml (amazon.aws)"), strict=True
        )
    ]
    ours, peer = summary(results["ours"]["wall"])[0], summary(results["peer"]["wall"])[0]
    return {
        "title": "the whole flow: find, launch, configure (webserver role), image, clone x2, verify (sandbox)",
        "setup": "same variables (playbooks/vars/flow.yml), same role, same sandbox; inventory by bakery.ec2.instances "
        "or amazon.aws.aws_ec2; teardown (not timed) through the API after each run.",
        "rows": rows,
        "ratio": ratio(ours, peer),
        "targets": [
            (
                "the flow no slower than the peer's",
                ours <= peer,
                f"median {ours:.1f} s against {peer:.1f} s ({ours / peer:.2f}x)",
            )
        ],
    }
