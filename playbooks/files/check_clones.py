"""Check that every clone serves the app, all at once, against one deadline (run by clone.yml on the controller).

Standard input: a JSON list of ``{"instance_id": ..., "private_ip_address": ...}`` (the instances ec2_launch
returns; other keys are ignored, a clone without an address is reported); with ``--address-field
public_ip_address`` each clone is asked at its ``public_ip_address`` instead. Each clone is asked
``GET http://ADDRESS/healthz`` (or ``--path PATH``, as pipeline.yml's canaries are; 5 s timeout per request, one
second between tries) until it answers 200 with ``{"status": "ok", "instance_id": <its own ID>}`` (another path may
leave the instance ID out) or ``--timeout`` seconds after the start have passed; every
clone is polled by its own thread, so the whole check takes at most about ``--timeout`` + 5 seconds however many
clones there are and however many are dead.

With ``--fetch PATH`` (repeatable; flow.yml's summary asks for ``/api/employees``), each clone that answers for
itself is then asked ``GET http://ADDRESS/PATH`` once, within the same deadline (each request's timeout ends with
it, at least 0.5 s), and the JSON answers are returned: a clone whose answer is not 200 JSON is reported in ``bad``
too.

Standard output: one JSON object, ``{"checked": N, "seconds": S, "bad": [{"instance_id", "address",
"reason"}, ...], "report": "ID at ADDRESS: REASON; ...", "answers": {INSTANCE_ID: {"/healthz": {...}, PATH: {...},
...}, ...}}`` (``report``: ``bad`` as one line, empty when every clone answered; ``answers`` holds the clones that
answered everything); exit status 0 (the playbook judges ``bad``), 2 for input that is not such a list.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

REQUEST_TIMEOUT = 5.0
PAUSE = 1.0
SHOWN = 120  # characters of an unexpected answer shown in the reason
HEALTH = "/healthz"


def _no_proxy():
    # Clones are reached directly at their private addresses, never through a proxy of the controller's environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(opener, url, timeout):
    """(status, body, parsed JSON or None), or (None, why not, None) when nothing answers."""
    try:
        with opener.open(url, timeout=timeout) as resp:
            body = resp.read(1 << 20).decode("utf-8", "replace")
            status = resp.status
    except urllib.error.HTTPError as err:
        return None, f"HTTP {err.code} {err.reason}", None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return None, f"no answer ({reason})", None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return status, body, data


def _shown(body):
    text = " ".join(body.split())
    return "answered " + (text if len(text) <= SHOWN else text[: SHOWN - 3] + "...")


def _ask(opener, address, instance_id, timeout, answers=None, path=HEALTH):
    """None when the clone answers for itself, otherwise why not (one line). Its answer goes into ``answers``.

    The answer must be 200 with JSON ``status`` ``ok`` and the clone's own ``instance_id`` (a path other than
    /healthz may leave the instance ID out).
    """
    status, body, data = _get(opener, f"http://{address}{path}", timeout)
    if status is None:
        return body
    ours = isinstance(data, dict) and data.get("status") == "ok"
    ours = ours and (data.get("instance_id") == instance_id or (path != HEALTH and "instance_id" not in data))
    if status == 200 and ours:
        if answers is not None:
            answers[path] = data
        return None
    return _shown(body)


def _fetch(opener, address, paths, answers, timeout):
    """None when every path answers 200 with JSON (kept in ``answers``), otherwise why the first one did not.

    ``timeout()`` gives each request's timeout: what is left of the check's deadline.
    """
    for path in paths:
        status, body, data = _get(opener, f"http://{address}{path}", timeout())
        if status is None:
            return f"{path}: {body}"
        if status != 200 or data is None:
            return f"{path}: {_shown(body)}"
        answers[path] = data
    return None


def check(clones, timeout, clock=time.monotonic, fetch=(), answers=None, field="private_ip_address", path=HEALTH):
    """Poll every clone in its own thread until it answers for itself or the deadline passes.

    With ``fetch``, each clone that answers for itself is then asked each of those paths once, and ``answers``
    (a dict) gets the clone's answers under its instance ID when all came back.
    """
    deadline = clock() + timeout
    reasons = {}
    opener = _no_proxy()

    def timeout():
        """A request's timeout: at most REQUEST_TIMEOUT, and no further than the deadline (at least 0.5 s)."""
        return max(0.5, min(REQUEST_TIMEOUT, deadline - clock()))

    def poll(clone):
        instance_id, address = clone["instance_id"], clone[field]
        got = {}
        while True:
            reason = _ask(opener, address, instance_id, timeout(), got, path)
            if reason is None:
                reason = _fetch(opener, address, fetch, got, timeout)
                if reason is not None:
                    reasons[instance_id] = reason
                    return
                reasons.pop(instance_id, None)
                if answers is not None:
                    answers[instance_id] = got
                return
            reasons[instance_id] = reason
            if clock() + PAUSE > deadline:
                return
            time.sleep(PAUSE)

    for clone in clones:
        if not clone.get(field):
            reasons[clone["instance_id"]] = "no private address" if field == "private_ip_address" else f"no {field}"
    threads = [threading.Thread(target=poll, args=(c,), daemon=True) for c in clones if c["instance_id"] not in reasons]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [
        {"instance_id": iid, "address": c.get(field) or "", "reason": reasons[iid]}
        for c in clones
        if (iid := c["instance_id"]) in reasons
    ]


def _clones(text):
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"standard input is not JSON: {err}") from None
    if not isinstance(data, list):
        raise ValueError("standard input is not a JSON list of instances")
    for item in data:
        if not (isinstance(item, dict) and isinstance(item.get("instance_id"), str)):
            raise ValueError(f"not an instance with an instance_id: {json.dumps(item)[:200]}")
    return data


def main(argv=None, stdin=None, stdout=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, required=True, help="seconds for the whole check")
    parser.add_argument(
        "--fetch",
        action="append",
        default=[],
        metavar="PATH",
        help="once a clone answers for itself, GET this path (from /) and return its JSON answer; repeatable",
    )
    parser.add_argument(
        "--address-field",
        default="private_ip_address",
        choices=("private_ip_address", "public_ip_address"),
        help="the address of each clone to ask (the flow's flow_connect_address)",
    )
    parser.add_argument(
        "--path", default=HEALTH, help="the path each clone must answer with 200 and JSON status ok (default /healthz)"
    )
    args = parser.parse_args(argv)
    bad_paths = [("--fetch", p) for p in args.fetch if not p.startswith("/")]
    bad_paths += [("--path", args.path)] if not args.path.startswith("/") else []
    if bad_paths:
        print(f"check_clones: {bad_paths[0][0]} {bad_paths[0][1]}: not a path starting with /", file=sys.stderr)
        return 2
    try:
        clones = _clones((stdin or sys.stdin).read())
    except ValueError as err:
        print(f"check_clones: {err}", file=sys.stderr)
        return 2
    started = time.monotonic()
    answers = {}
    bad = check(clones, args.timeout, fetch=args.fetch, answers=answers, field=args.address_field, path=args.path)
    seconds = round(time.monotonic() - started, 1)
    report = "; ".join(f"{b['instance_id']} at {b['address']}: {b['reason']}" for b in bad)
    result = {"checked": len(clones), "seconds": seconds, "bad": bad, "report": report, "answers": answers}
    print(json.dumps(result), file=stdout or sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
