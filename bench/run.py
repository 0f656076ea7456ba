"""Every benchmark of bakery.ec2 against amazon.aws, in one run; writes bench/RESULTS.md.

    python bench/run.py --output bench/RESULTS.md     # make bench (about 20 minutes; the sandbox runs real hosts)
    python bench/run.py --smoke                       # make bench-smoke (a few minutes): a quick mode of each case
    python bench/run.py --smoke --part moto           # only the cases on moto servers (make test: the check lane)

Cases: (1) inventory (bench/inventory/run.py), (2) ami_find `regions:` vs ec2_ami_info looped over 16 regions on moto,
(3) ec2_launch vs ec2_instance, (4) ami_from_instance vs ec2_ami, (5) the whole flow vs bench/peer/flow.yml;
(6) fleet scale, bake+clone against configure-each (bench/scale.py), (7) the employee directory's list and add
latency on SQLite and on DynamoDB + S3 of a local moto server (bench/app_store.py), (8) the same on a sandbox host
deployed by the flow (bench/app_sandbox.py), (9) rolling N clones onto a new image behind the load balancer with a
steady probe (bench/rollout.py), (10) ami_retire over 2,000 images in 4 regions and their users on moto
(bench/retire.py; ours only, as amazon.aws has no module that retires images by what uses them), (11) the image
pipeline up to date and through a bake and rollout, beside the flow's steps (bench/pipeline.py), (12) the clones as
an Auto Scaling group against ec2_launch's: time to N serving, a rollout, an outage (bench/fleet_asg.py); 3-6, 8, 9,
11 and 12 on the local EC2 sandbox (reused when running, else started and stopped here). Runs alternate between
ours and the peer; API calls are counted at the endpoint by a counting proxy (bench/harness.py).

The smoke mode does not need the peer's virtualenv (.venv-bench takes over a minute to build) and takes a few
minutes (the scale case bakes one host and clones 2; the others take under a minute together): the peer's side
of every case runs our modules as a stand-in, so the peer code paths of the harness (its runs, counts, timings
and report) still run; when .venv-bench exists, the peer's playbooks are also syntax-checked with amazon.aws.
The inventory smoke runs ours and the boto3 floor.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "inventory"))

import app_sandbox
import app_store
import cases
import fleet_asg
import harness
import pipeline
import retire
import rollout
import run as inventory
import scale

# Cases on moto servers of their own (no sandbox, no root): the rest need the sandbox.
MOTO_CASES = ("inventory", "ami_find", "ami_retire", "app_store")
# Cases with no peer (ours only, or the app itself): they run without .venv-bench.
NO_PEER = {"scale", "rollout", "asg", "ami_retire", "pipeline", "app_store", "app_sandbox"}


def inventory_case(runs: int, big_runs: int, smoke: bool) -> dict:
    if smoke:
        results, _cmds = inventory.bench_size("smoke", 1000, ["us-east-1"], 1, 0.05, ["ours", "floor"])
        wide, _cmds = inventory.bench_size("smoke-16regions", 10000, list(cases.REGIONS), 1, 0.05, ["ours"])
        return {
            "smoke": True,
            "text": f"ours {results['ours'][0][0]:.2f} s, floor {results['floor'][0][0]:.2f} s; "
            f"ours at 10,000 in 16 regions {wide['ours'][0][0]:.2f} s, {wide['ours'][0][1]:.0f} MiB",
        }
    all_results = {}
    for label, (instances, regions) in inventory.SIZES.items():
        cases.log(f"inventory {label}")
        all_results[label], _cmds = inventory.bench_size(
            label,
            instances,
            regions,
            runs if instances < 10000 else big_runs,
            0.25,
            inventory.CONTENDERS.get(label, inventory.ALL_CONTENDERS),
        )
    text = inventory.report(all_results, runs, 0.25, f"python bench/run.py --runs {runs}")
    text = text.replace(f"({runs} runs of each;", f"({runs} runs of each at 1k, {big_runs} at 10k and 100k;")
    big = all_results["10k-4regions"]
    huge = all_results["100k-16regions"]["ours"]

    def med(name, idx):
        return harness.summary([v[idx] for v in big[name]])[0]

    speed = med("aws_ec2", 0) / med("ours", 0)
    floor = med("ours", 0) / med("floor", 0)
    memory = med("ours", 1) / med("aws_ec2", 1)
    huge_time, huge_mem = (harness.summary([v[idx] for v in huge])[0] for idx in (0, 1))
    huge_cpu = harness.summary([v[2] for v in huge])[0]
    table = text.split("\n\n", 5)[-1]  # the table and what follows it; the header is ours
    return {
        "text": table,
        "intro": "\n\n".join(text.split("\n\n")[1:2]),
        "targets": [
            ("inventory ≥ 10x faster than aws_ec2 (10k / 4 regions)", speed >= 10, f"{speed:.1f}x"),
            ("inventory within 1.5x of the boto3 floor (10k / 4 regions)", floor <= 1.5, f"{floor:.2f}x its time"),
            ("inventory at most half aws_ec2's peak memory (10k / 4 regions)", memory <= 0.5, f"{memory:.2f}x"),
            (
                "inventory of 100k instances in 16 regions within 60 s",
                huge_time <= 60,
                f"{huge_time:.1f} s ({huge_cpu:.1f} s CPU)",
            ),
            ("inventory of 100k instances in 16 regions in at most 2 GiB", huge_mem <= 2048, f"{huge_mem:.0f} MiB"),
        ],
    }


def syntax_check_peer():
    """With .venv-bench present, the peer's playbooks must at least parse with amazon.aws (a few seconds)."""
    books = [*sorted((harness.HERE / "modules").glob("*_peer.yml")), harness.HERE / "peer" / "flow.yml"]
    env = harness.base_env("http://127.0.0.1:9", Path("/tmp"))  # noqa: S108 - nothing is written there
    for book in books:
        cmd = [harness.ansible_bin("peer"), "--syntax-check", str(book)]
        subprocess.run(cmd, env=harness.contender_env(env, "peer"), check=True, capture_output=True, timeout=120)
    cases.log(f"peer playbooks parse with amazon.aws: {', '.join(b.name for b in books)}")


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _h in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict, args, seconds: float, argv: list[str]) -> str:
    out = [
        "# Benchmarks: bakery.ec2 against amazon.aws",
        "",
        "Generated by `make bench` (`python bench/run.py --output bench/RESULTS.md`); do not edit by hand.",
        "Ours: this checkout (`ANSIBLE_COLLECTIONS_PATH=.build/collections`, project virtualenv). Peer: amazon.aws",
        "from the `ansible` PyPI package in `.venv-bench` (bench/requirements.txt). Runs alternate ours/peer;",
        "times are medians with min-max; API calls are counted at the endpoint (a counting proxy on 127.0.0.1",
        "in front of moto or the sandbox, by EC2 action) for one operation (the last run).",
        "",
        f"Machine: {inventory.machine()}.",
        "",
        f"Command: `python bench/run.py {shlex.join(a for a in argv[1:] if a not in ('--output', args.output))}` "
        f"({args.runs} runs of each contender per case; {args.inventory_10k_runs} for the inventory at 10k and 100k, "
        f"{args.flow_runs} for the flow); "
        f"whole run {seconds / 60:.1f} min.",
        "",
        "## Targets",
        "",
    ]
    targets = [t for r in results.values() for t in r.get("targets", [])]
    out.append(
        table(["target", "met", "measured"], [(n, "**met**" if ok else "**not met**", why) for n, ok, why in targets])
    )
    if "inventory" in results:
        out += ["", "## 1. Inventory", "", results["inventory"]["intro"], "", results["inventory"]["text"].strip()]
    if "ami_find" in results:
        r = results["ami_find"]
        out += [
            "",
            f"## 2. {r['title']}",
            "",
            r["setup"],
            "",
            "Operation = from the start of the find task to the end of the pick task (the peer sorts in Jinja); "
            "wall = the whole `ansible-playbook` process.",
            "",
        ]
        out.append(
            table(
                ["contender", "operation (s)", "wall (s)", "API calls", "ours/peer (operation)"],
                [
                    (
                        x["contender"],
                        x["op"]["text"],
                        x["wall"]["text"],
                        x["calls"],
                        "" if x["who"] == "peer" else f"{r['ratio']:.2f}",
                    )
                    for x in r["rows"]
                ],
            )
        )
        out += [
            "",
            f"Time the endpoint spent answering (moto filtering {r['size']:,} images in each region), per run: "
            + ", ".join(f"{x['contender']} {x['endpoint']:.2f} s" for x in r["rows"])
            + ".",
        ]
    for key, number in (("launch", 3), ("image", 4)):
        if key in results:
            r = results[key]
            out += ["", f"## {number}. {r['title']}", "", r["setup"], ""]
            out.append(
                table(
                    [
                        "contender",
                        "task (s)",
                        "wall (s)",
                        "task end - state reached (s)",
                        "API calls",
                        "rerun: API calls",
                        "rerun: outcome",
                        "ours/peer (task)",
                    ],
                    [
                        (
                            x["contender"],
                            x["op"]["text"],
                            x["wall"]["text"],
                            x["overhead"]["text"],
                            x["calls"],
                            x["rerun_calls"],
                            x["rerun"],
                            "" if x["who"] == "peer" else f"{r['ratio']:.2f}",
                        )
                        for x in r["rows"]
                    ],
                )
            )
    if "flow" in results:
        r = results["flow"]
        out += ["", f"## 5. {r['title']}", "", r["setup"], ""]
        out.append(
            table(
                ["contender", "wall (s)", "API calls", "ours/peer"],
                [
                    (x["contender"], x["wall"]["text"], x["calls"], "" if x["who"] == "peer" else f"{r['ratio']:.2f}")
                    for x in r["rows"]
                ],
            )
        )
    if "scale" in results:
        r = results["scale"]
        out += ["", f"## 6. {r['title']}", "", r["setup"], "", r["text"]]
    app_sections = (
        ("app_store", app_store, "The app's store: list and add latency (local moto)"),
        (
            "app_sandbox",
            app_sandbox,
            "The app on a sandbox host: list and add latency (SQLite; DynamoDB + S3 by the instance role)",
        ),
    )
    for case, module, title in app_sections:
        if case in results:
            what = module.__doc__.split("\n\n")[2].strip()
            out += ["", f"## {SECTIONS[case]}. {title}", "", what, "", results[case]["text"]]
    if "rollout" in results:
        what = rollout.__doc__.split("\n\n")[2].strip()
        title = "Rolling the clones onto a new image behind the load balancer"
        out += ["", f"## {SECTIONS['rollout']}. {title}", "", what, "", results["rollout"]["text"]]
    if "ami_retire" in results:
        what = retire.__doc__.split("\n\n")[2].strip()
        title = "ami_retire: 2,000 images in 4 regions, 5,000 instances, 200 launch template versions (moto)"
        out += ["", f"## {SECTIONS['ami_retire']}. {title}", "", what, "", results["ami_retire"]["text"]]
    if "pipeline" in results:
        what = pipeline.__doc__.split("\n\n")[2].strip()
        title = "The image pipeline: up to date, and a bake through rollout beside the flow"
        out += ["", f"## {SECTIONS['pipeline']}. {title}", "", what, "", results["pipeline"]["text"]]
    if "asg" in results:
        what = fleet_asg.__doc__.split("\n\n")[2].strip()
        title = "The clones as an Auto Scaling group against ec2_launch's: serving, rollout, outage"
        out += ["", f"## {SECTIONS['asg']}. {title}", "", what, "", results["asg"]["text"]]
    notes = harness.HERE / "NOTES.md"
    if notes.exists():
        out += ["", notes.read_text().strip()]
    return "\n".join(out) + "\n"


# Report section numbers of the cases, and how the names of their target rows begin.
SECTIONS = {
    "inventory": 1,
    "ami_find": 2,
    "launch": 3,
    "image": 4,
    "flow": 5,
    "scale": 6,
    "app_store": 7,
    "app_sandbox": 8,
    "rollout": 9,
    "ami_retire": 10,
    "pipeline": 11,
    "asg": 12,
}
TARGET_PREFIXES = {
    "inventory": "inventory",
    "ami_find": "ami_find",
    "launch": "bakery.ec2.ec2_launch",
    "image": "bakery.ec2.ami_from_instance",
    "flow": "the flow",
    "scale": "fleet",
    "app_store": "app store",
    "app_sandbox": "app on the sandbox",
    "rollout": "rollout",
    "ami_retire": "ami_retire",
    "pipeline": "pipeline",
    "asg": "asg",
}


def splice(old: str, new: str, cases_run: list[str], command: str) -> str:
    """The report ``old`` with the sections, target rows and notes of ``cases_run`` taken from ``new``.

    For running one case (``--replace-in bench/RESULTS.md``) without losing the figures of the others; each
    replaced section says which command produced it.
    """

    def parts(text):
        head, *sections = text.split("\n## ")
        return head, {section.split("\n", 1)[0]: section for section in sections}

    def rows(section):
        return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| target")]

    old_head, old_sections = parts(old)
    _new_head, new_sections = parts(new)
    prefixes = tuple(TARGET_PREFIXES[c] for c in cases_run)
    numbers = {str(SECTIONS[c]) for c in cases_run}

    def section_number(title):  # "10. ami_retire: ..." -> "10" (sections of one or two digits)
        return title.split(".", 1)[0]

    out = {}
    for title, section in old_sections.items():
        if title == "Targets":
            fresh = [r for r in rows(new_sections["Targets"]) if r[2:].startswith(prefixes)]
            table = []
            # A case's new rows take the place of its old ones; a case that had none adds them at the end.
            for r in rows(section):
                if r.startswith("| ---"):
                    continue
                prefix = next((p for p in prefixes if r[2:].startswith(p)), None)
                if prefix is None:
                    table.append(r)
                elif not any(t[2:].startswith(prefix) for t in table):
                    table += [f for f in fresh if f[2:].startswith(prefix)]
            table += [f for f in fresh if f not in table]
            section = "Targets\n\n| target | met | measured |\n| --- | --- | --- |\n" + "\n".join(table) + "\n"
        elif section_number(title) in numbers:
            fresh = next(v for k, v in new_sections.items() if section_number(k) == section_number(title))
            title_line, body = fresh.split("\n", 1)
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            section = f"{title_line}\n\nThis section: `{command}` (updated {when}).\n{body}"
        elif title.startswith("Reading the numbers"):
            section = next(v for k, v in new_sections.items() if k.startswith("Reading the numbers"))
        out[title] = section
    # A case the report has no section for yet: its section goes after the others of the cases.
    have = {section_number(title) for title in old_sections}
    for title, section in new_sections.items():
        if section_number(title) in numbers and section_number(title) not in have:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            title_line, body = section.split("\n", 1)
            # In the order of the numbers: before the first section numbered higher, else after the last one.
            number = int(title.split(".", 1)[0])
            numbered = [k for k in out if k[:1].isdigit()]
            later = [k for k in numbered if int(k.split(".", 1)[0]) > number]
            at = list(out).index(later[0]) if later else (list(out).index(numbered[-1]) + 1 if numbered else len(out))
            items = list(out.items())
            items.insert(at, (title, f"{title_line}\n\nThis section: `{command}` (updated {when}).\n{body}"))
            out = dict(items)
    return "\n## ".join([old_head, *out.values()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each contender per case")
    parser.add_argument("--flow-runs", type=int, default=5, help="runs of each contender of the flow")
    parser.add_argument(
        "--inventory-10k-runs", type=int, default=5, help="runs of each contender at 10k instances (and ours at 100k)"
    )
    parser.add_argument("--images", type=int, default=200, help="images per region in case 2")
    parser.add_argument("--count", type=int, default=5, help="instances launched by case 3")
    parser.add_argument(
        "--cases",
        default="inventory,ami_find,launch,image,flow,scale,app_store,app_sandbox,rollout,ami_retire,pipeline,asg",
    )
    parser.add_argument("--scale-each", default="1,4,8,16,32,64", help="case 6: configure-each at these sizes")
    parser.add_argument("--scale-clones", default="1,4,8,16,32,64", help="case 6: bake once, clone these sizes")
    parser.add_argument(
        "--scale-store", default="dynamodb", choices=("dynamodb", "sqlite"), help="case 6: the app's store"
    )
    parser.add_argument(
        "--scale-mitogen", default="1,4,16", help="case 6: configure-each with Mitogen (flow_mitogen) at these sizes"
    )
    parser.add_argument(
        "--rollout-clones", default="2,4,8", help="case 9: roll this many clones, one size after another"
    )
    parser.add_argument(
        "--asg-clones",
        default="2,8,32",
        help="case 12: time to this many serving clones, each fleet, one size after another",
    )
    parser.add_argument("--asg-rollout", type=int, default=8, help="case 12: roll this many clones of each fleet")
    parser.add_argument("--app-requests", type=int, default=200, help="calls of list and of add per store, case 7")
    parser.add_argument("--output", help="write the Markdown report here")
    parser.add_argument("--smoke", action="store_true", help="a quick mode of each case (a few minutes)")
    parser.add_argument(
        "--part",
        choices=("all", "moto", "sandbox"),
        default="all",
        help="only the cases on moto servers of their own (no sandbox), or only those on the sandbox",
    )
    parser.add_argument("--from-json", help="render the raw results of an earlier run (.build/bench-results.json)")
    parser.add_argument(
        "--replace-in", help="update this report: only the sections, targets and notes of the cases run now"
    )
    args = parser.parse_args()
    if args.from_json:
        raw = json.loads(Path(args.from_json).read_text())
        if "scale" in raw["results"]:  # drawn again from every size bench/scale-results.json holds
            raw["results"]["scale"] = scale.report(scale.load())
        text = render(raw["results"], parser.parse_args(raw["argv"][1:]), raw["seconds"], raw["argv"])
        print(text)
        if args.output:
            Path(args.output).write_text(text)
        if args.replace_in:
            replace_in(args.replace_in, text, raw["results"], raw["argv"])
        return
    wanted = args.cases.split(",")
    if args.part != "all":  # make test runs the two parts in its two lanes
        wanted = [case for case in wanted if (case in MOTO_CASES) == (args.part == "moto")]
    start = time.monotonic()
    if args.smoke:
        # Always the stand-in: the real peer waits 15 s per poll (a minute for cases 3-4 alone).
        harness.STAND_IN = True
        cases.log("smoke: the peer's side runs our modules as a stand-in")
        args.runs, args.flow_runs, args.images, args.count = 1, 1, 200, 1
    elif (
        set(wanted) - NO_PEER and not (harness.BENCH_VENV / "ansible-playbook").exists()
    ):  # the peer runs in those cases only
        sys.exit(f"error: {harness.BENCH_VENV} is missing; make bench creates it")
    results = {}
    if "inventory" in wanted:
        results["inventory"] = inventory_case(args.runs, args.inventory_10k_runs, args.smoke)
    if "ami_find" in wanted:
        cases.log(f"ami_find: {args.images:,} images in each region on moto")
        regions = cases.REGIONS[:4] if args.smoke else cases.REGIONS
        results["ami_find"] = cases.case_ami_find(args.runs, args.images, regions)
    if "ami_retire" in wanted:  # no peer: amazon.aws has no module that retires images by what uses them
        results["ami_retire"] = retire.case_ami_retire(retire.SIZES[:1] if args.smoke else retire.SIZES)
    if "app_store" in wanted:
        requests, employees = (10, 10) if args.smoke else (args.app_requests, 100)
        cases.log(f"app_store: {requests} lists and adds on SQLite and on DynamoDB + S3 (local moto)")
        results["app_store"] = app_store.case_app_store(requests, employees)
    if {"launch", "image", "flow", "scale", "app_sandbox", "rollout", "pipeline", "asg"} & set(wanted):
        with cases.sandbox() as url:
            if "launch" in wanted:
                results["launch"] = cases.case_launch(args.runs, args.count, url)
            if "image" in wanted:
                results["image"] = cases.case_image(args.runs, url)
            if "flow" in wanted:
                results["flow"] = cases.case_flow(args.flow_runs, url, smoke=args.smoke)
            if "scale" in wanted:
                # Smoke: the bake, 2 clones and configure-each at 1 (behind its load balancer), a few minutes.
                each = [1] if args.smoke else [int(n) for n in args.scale_each.split(",") if n]
                clones = [2] if args.smoke else [int(n) for n in args.scale_clones.split(",") if n]
                # Smoke: the flow's default store; --scale-store sqlite measures the store-less fleet.
                # Not in the smoke run: the flow with Mitogen is tested by make test (tests/sandbox, Molecule).
                with_mitogen = [] if args.smoke else [int(n) for n in args.scale_mitogen.split(",") if n]
                results["scale"] = scale.case_scale(
                    url, each, clones, inventory.machine(), smoke=args.smoke, store=args.scale_store,
                    mitogen_sizes=with_mitogen,
                )  # fmt: skip
            # Hosts of its own, launched and configured by the flow's playbooks: not in the smoke run (< 1 minute).
            if "app_sandbox" in wanted and not args.smoke:
                cases.log(f"app_sandbox: {args.app_requests} lists and adds on a sandbox host, SQLite then DynamoDB")
                results["app_sandbox"] = app_sandbox.case_app_sandbox(args.app_requests, 100, url)
            if "rollout" in wanted:
                # Smoke: 2 clones only.
                counts = [2] if args.smoke else [int(n) for n in args.rollout_clones.split(",") if n]
                cases.log(f"rollout: {', '.join(map(str, counts))} clones behind the load balancer")
                results["rollout"] = rollout.case_rollout(url, counts)
            # Fleets of up to 32 hosts, twice, and two rollouts (tens of minutes): not in the smoke run.
            if "asg" in wanted and not args.smoke:
                counts = [int(n) for n in args.asg_clones.split(",") if n]
                cases.log(f"asg: {', '.join(map(str, counts))} clones, as instances and as an Auto Scaling group")
                results["asg"] = fleet_asg.case_asg(url, counts, args.asg_rollout)
            # A flow, 3 up-to-date runs and a bake through rollout (about 5 minutes): not in the smoke run.
            if "pipeline" in wanted and not args.smoke:
                cases.log("pipeline: the flow, then the pipeline up to date and with a role variable changed")
                results["pipeline"] = pipeline.case_pipeline(url)
    if args.smoke and (harness.BENCH_VENV / "ansible-playbook").exists():
        harness.STAND_IN = False
        syntax_check_peer()
    seconds = time.monotonic() - start
    if args.smoke:
        print(
            f"bench-smoke: every case{'' if args.part == 'all' else ' on ' + args.part} ran in {seconds:.0f} s"
            + (" (peer stand-in: our modules)" if harness.STAND_IN else "")
        )
        return
    raw = harness.REPO / ".build" / "bench-results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"results": results, "argv": sys.argv, "seconds": seconds}, default=str))
    text = render(results, args, seconds, sys.argv)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    if args.replace_in:
        replace_in(args.replace_in, text, results, sys.argv)


def replace_in(path: str, text: str, results: dict, argv: list[str]) -> None:
    """Update the report at ``path`` with the cases of ``results`` (rendered as ``text`` by ``argv``)."""
    report = Path(path)
    kept = [a for a in argv[1:] if a not in ("--replace-in", path, "--output") and not a.endswith(".md")]
    command = f"python bench/run.py {shlex.join(kept)}"
    report.write_text(splice(report.read_text(), text, list(results), command))


if __name__ == "__main__":
    main()
