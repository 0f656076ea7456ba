"""Latency of the employee directory's list and add, on SQLite and on DynamoDB + S3 (a local moto server).

    python bench/app_store.py --requests 200 --employees 100     # prints a Markdown table

What it measures: the app of roles/webserver called through WSGI in this process (what gunicorn calls; no
HTTP server, no nginx), its store either a SQLite file in a temporary directory or a DynamoDB table and S3
bucket of a moto server on a random 127.0.0.1 port (another process). "list" is `GET /` (the first page of 24,
sorted by name, with the count) over the employees added first; "add" is `POST /api/employees` with the
administrator's HTTP Basic credentials (the password is proven once, then cached by the app, so the store's
writes dominate). p50 and p95 of the calls of each, after 5 warm-up calls. moto is not DynamoDB: its
figures show the app's own cost and the shape of its calls (a list: a GetItem for the session and two reads of
the index ``employees``, one for the page and one for its department filter, each a Query per 500 employees; an
add: the session and credential checks (three GetItem, one DeleteItem), one UpdateItem, one TransactWriteItems of
three items and one GetItem), not AWS's latency, which the flow's bench on the sandbox and a real account give.
Then 10,000 expired sessions are written into the table (as the app writes them, before DynamoDB's TTL deletes
them): the items one list reads (ScannedCount) stay what they were, where the former list (a Scan filtered on
``employee#``) read every session too; moto's own Query of an index walks the whole table, so its latency still
grows here, which DynamoDB's does not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
# Appended, not put first: bench/run.py's own "run" module names must keep winning.
sys.path.append(str(HERE.parent / "tests" / "app"))

import cases
from directory_testing import NEW, Client, make_app
from employee_directory.store_dynamodb import TABLE_SHAPE

REGION = "eu-west-1"
# moto accepts any key; these reach only the local moto server.
MOTO_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
WARM_UP = 5


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), statistics.quantiles(ms, n=20, method="inclusive")[18]


def timed(call, count: int) -> list[float]:
    times = []
    for number in range(WARM_UP + count):
        start = time.perf_counter()
        call(number)
        if number >= WARM_UP:
            times.append(time.perf_counter() - start)
    return times


def measure(app, requests: int, employees: int) -> dict:
    client = Client(app, admin=True)
    run = uuid.uuid4().hex[:6]

    def add(number, prefix="add"):
        person = dict(NEW, name=f"Bench {prefix} {number}", email=f"{prefix}{number}.{run}@example.com")
        result = client.send_json("POST", "/api/employees", person)
        if result.status != 201:
            raise RuntimeError(f"add: {result.status} {result.text}")

    for number in range(employees):
        add(number, "pre")

    def listing(_number):
        result = client.get("/")
        if result.status != 200:
            raise RuntimeError(f"list: {result.status}")

    return {"list": percentiles(timed(listing, requests)), "add": percentiles(timed(add, requests))}


EXPIRED_SESSIONS = 10_000


def items_read(app, call) -> int:
    """Items DynamoDB read (ScannedCount of every Query and Scan) while ``call()`` ran in ``app``."""
    read = [0]

    def count(parsed, model, **kwargs):
        if model.name in ("Query", "Scan"):
            read[0] += parsed.get("ScannedCount", 0)

    events = app.store._dynamodb.meta.events
    events.register("after-call.dynamodb", count)
    try:
        call()
    finally:
        events.unregister("after-call.dynamodb", count)
    return read[0]


def scanned_by_a_filtered_scan(app) -> int:
    """What the former listing read: a strongly consistent Scan of the whole table filtered on employee#."""
    ddb, params, read = app.store._dynamodb, {"TableName": app.store.table, "ConsistentRead": True}, 0
    params.update(FilterExpression="begins_with(pk, :p)", ExpressionAttributeValues={":p": {"S": "employee#"}})
    while True:
        page = ddb.scan(**params)
        read += page["ScannedCount"]
        if "LastEvaluatedKey" not in page:
            return read
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def expired_sessions_cost(app, requests: int) -> dict:
    """Items read by one list, and its p50/p95, before and after EXPIRED_SESSIONS expired sessions are written (as
    the app writes them: session#<hash> with expires_at in the past, which DynamoDB's TTL deletes within days)."""
    client = Client(app, admin=True)

    def listing():
        if client.get("/").status != 200:
            raise RuntimeError("list failed")

    before = {"index": items_read(app, listing), "scan": scanned_by_a_filtered_scan(app)}
    employees = len(app.store.search())
    expired = int(time.time()) - 3600
    ddb = app.store._dynamodb
    for start in range(0, EXPIRED_SESSIONS, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"session#{n:064x}"}, "expires_at": {"N": str(expired)},
                                     "password_stamp": {"S": "bench"}}}}
            for n in range(start, start + 25)
        ]  # fmt: skip
        ddb.batch_write_item(RequestItems={app.store.table: batch})
    after = {"index": items_read(app, listing), "scan": scanned_by_a_filtered_scan(app)}
    list_times = percentiles(timed(lambda _n: listing(), requests))
    return {"before": before, "after": after, "list": list_times, "employees": employees}


@contextlib.contextmanager
def environment(**values):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def case_app_store(requests: int, employees: int) -> dict:
    """Rows of (store, operation, p50 ms, p95 ms), and the report's text."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-app-") as work:
        work = Path(work)
        (work / "sqlite").mkdir()
        sqlite = measure(make_app(work / "sqlite", seed=[]), requests, employees)
        rows += [("sqlite", op, *sqlite[op]) for op in ("list", "add")]
        (work / "amis.json").write_text("[]")
        with cases.moto_server(work / "amis.json", work) as url:
            table, bucket = "bench-directory", "bench-directory-photos"
            aws = {"region_name": REGION, "endpoint_url": url, **MOTO_KEYS}
            boto3.client("dynamodb", **aws).create_table(TableName=table, **TABLE_SHAPE)
            boto3.client("s3", **aws).create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            (work / "dynamodb").mkdir()
            # The app takes credentials from boto3's default chain only: the environment, here.
            with environment(
                AWS_ACCESS_KEY_ID=MOTO_KEYS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=MOTO_KEYS["aws_secret_access_key"],
            ):
                app = make_app(
                    work / "dynamodb",
                    seed=[],
                    store="dynamodb",
                    dynamodb_table=table,
                    s3_bucket=bucket,
                    aws_region=REGION,
                    aws_endpoint_url=url,
                )
                dynamo = measure(app, requests, employees)
                sessions = expired_sessions_cost(app, requests)
        rows += [("dynamodb (local moto)", op, *dynamo[op]) for op in ("list", "add")]
        rows.append((f"dynamodb, {EXPIRED_SESSIONS:,} expired sessions", "list", *sessions["list"]))
    lines = [
        f"{requests} calls of each operation, {employees} employees in the store before the first list.",
        "",
        "| store | operation | p50 ms | p95 ms |",
        "| --- | --- | --- | --- |",
        *(f"| {store} | {op} | {p50:.1f} | {p95:.1f} |" for store, op, p50, p95 in rows),
        "",
        f"Items DynamoDB reads for one list (ScannedCount), with no session and with {EXPIRED_SESSIONS:,} expired "
        f"sessions in the table; {sessions['employees']} employees by then (those added first and by the adds), "
        "which the page's two Queries (the page, its department filter) read once each:",
        "",
        "| read | no session | with them |",
        "| --- | --- | --- |",
        f"| the app's list page: its Queries of the index `employees` | {sessions['before']['index']} | "
        f"{sessions['after']['index']} |",
        f"| one strongly consistent Scan filtered on `employee#`, as each of the page's reads was before | "
        f"{sessions['before']['scan']} | "
        f"{sessions['after']['scan']} |",
    ]
    flat = sessions["after"]["index"] == sessions["before"]["index"]
    targets = [
        (
            f"app store: a list reads as many items with {EXPIRED_SESSIONS:,} expired sessions as with none",
            flat,
            f"{sessions['before']['index']} -> {sessions['after']['index']} items (a Scan: "
            f"{sessions['before']['scan']} -> {sessions['after']['scan']})",
        )
    ]
    return {"rows": rows, "text": "\n".join(lines), "targets": targets, "sessions": sessions}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="calls of each operation per store")
    parser.add_argument("--employees", type=int, default=100, help="employees added before the first list")
    args = parser.parse_args()
    print(case_app_store(args.requests, args.employees)["text"])


if __name__ == "__main__":
    main()
