"""The store behind the app: DynamoDB + S3 shared by clones, and what happens when a store does not answer.

Two Application objects on one table and bucket, each with its own tmp_path (its own host), are two clones.
"""

import concurrent.futures
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from conftest import REGION, create_table, create_table_and_bucket
from directory_testing import ADMIN_PASSWORD, GIF_PIXEL, NEW, SEED, STORE, Client, FakeIMDS, basic, make_app
from employee_directory import auth, store_dynamodb
from employee_directory.store_common import DuplicateEmail

dynamodb_only = pytest.mark.dynamodb_only
APP_DIR = Path(__file__).resolve().parents[2] / "roles" / "webserver" / "files" / "app"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clones(tmp_path, count=2, **settings):
    return [make_app(tmp_path / f"clone{number}", **settings) for number in range(count)]


@pytest.fixture
def tmp_hosts(tmp_path):
    for number in range(4):
        (tmp_path / f"clone{number}").mkdir()
    return tmp_path


def store_errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "employee_directory" and r.levelno >= logging.ERROR]


# -- both stores --------------------------------------------------------------------------------------


def test_healthz_names_the_store(client, store):
    data = client.get("/healthz").json()
    assert data["store"] == store
    assert data["status"] == "ok"
    assert data["employees"] == 2


def test_pagination_reaches_every_employee_once(tmp_path, store, monkeypatch):
    # Scan pages of 4 items (the table also holds email and directory items): many DynamoDB pages.
    monkeypatch.setattr(store_dynamodb, "SCAN_PAGE", 4)
    app = make_app(tmp_path, page_size=5, seed=[])
    client = Client(app, admin=True)
    for number in range(23):
        person = dict(NEW, name=f"Person {number:02d}", email=f"person{number}@example.com")
        assert client.send_json("POST", "/api/employees", person).status == 201
    seen = []
    for page in range(1, 6):
        text = client.get(f"/?page={page}").text
        assert f"Page {page} of 5" in text
        seen.extend(re.findall(r"<strong dir=\"auto\">(Person \d+)</strong>", text))
    assert seen == [f"Person {number:02d}" for number in range(23)]
    assert client.get("/api/employees").json()["count"] == 23
    assert client.get("/api/employees?q=person 1").json()["count"] == 10
    assert "23 employees, showing 21 to 23" in client.get("/?page=5").text


def test_email_is_unique_whatever_its_case(client):
    assert client.send_json("POST", "/api/employees", NEW).status == 201
    again = client.send_json("POST", "/api/employees", dict(NEW, name="Other", email=NEW["email"].upper()))
    assert again.status == 409
    # An update to a taken address is refused and changes nothing; the employee's own address stays free to keep.
    taken = client.send_json("PATCH", "/api/employees/1", {"email": "GRACE@example.com", "location": "Paris"})
    assert taken.status == 409
    assert client.get("/api/employees/1").json()["location"] == "London"
    assert client.send_json("PATCH", "/api/employees/1", {"email": "ADA@example.com"}).status == 200
    # A changed address frees the old one.
    assert client.send_json("PATCH", "/api/employees/1", {"email": "ada@lovelace.example"}).status == 200
    assert client.send_json("POST", "/api/employees", dict(NEW, email="ada@example.com")).status == 201


def test_boto3_is_imported_only_for_dynamodb(tmp_path):
    code = (
        "import sys; from employee_directory.web import Application; "
        f"Application({{'database': {str(tmp_path / 'db')!r}, 'secret_file': {str(tmp_path / 's')!r}, "
        "'metadata_url': 'http://127.0.0.1:9'}); "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-B", "-c", code], cwd=APP_DIR, check=True, timeout=60)


# -- DynamoDB + S3 shared by clones ------------------------------------------------------------------


@dynamodb_only
def test_email_uniqueness_holds_between_clones_at_once(tmp_hosts):
    apps = clones(tmp_hosts, 4)
    admins = [Client(app, admin=True) for app in apps]
    same = dict(NEW, email="sprint@example.com")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: admins[n % 4].send_json("POST", "/api/employees", same).status, range(8)))
    assert sorted(statuses) == [201] + [409] * 7
    listed = Client(apps[3]).get("/api/employees?q=sprint@").json()
    assert listed["count"] == 1
    assert Client(apps[0]).get("/healthz").json()["employees"] == 3


@dynamodb_only
def test_seed_is_loaded_once_by_clones_starting_together(tmp_hosts):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        apps = list(pool.map(lambda number: make_app(tmp_hosts / f"clone{number}"), range(4)))
    for app in apps:
        names = [e["name"] for e in Client(app).get("/api/employees").json()["employees"]]
        assert names == ["Ada Lovelace", "Grace Hopper"]
        assert Client(app).get("/healthz").json()["employees"] == 2
    # A later clone with another seed (an image baked with other defaults) loads nothing.
    Client(apps[0], admin=True).request("DELETE", "/api/employees/2")
    later = make_app(tmp_hosts / "clone3", seed=[dict(SEED[0], email="else@example.com")])
    assert [e["name"] for e in Client(later).get("/api/employees").json()["employees"]] == ["Ada Lovelace"]


@dynamodb_only
def test_a_change_through_one_clone_is_seen_by_another(tmp_hosts):
    first, second = clones(tmp_hosts)
    admin = Client(first, admin=True)
    created = admin.send_json("POST", "/api/employees", NEW).json()
    assert created["id"] == 3
    assert Client(second).get("/api/employees/3").json()["email"] == NEW["email"]
    assert admin.request("PUT", "/api/employees/3/photo", GIF_PIXEL, "image/gif").status == 200
    photo = Client(second).get("/employees/3/photo")
    assert photo.status == 200
    # A GIF with a transparent colour is kept as PNG.
    assert photo.header("Content-Type") == "image/png"
    # The photo is an S3 object, not a part of the item.
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=STORE["aws_endpoint_url"])
    stored = s3.get_object(Bucket=STORE["s3_bucket"], Key="photos/3")
    assert stored["Body"].read() == photo.body
    assert stored["ContentType"] == "image/png"
    # Deleting through the second clone removes the employee, the address and the photo for everyone.
    assert Client(second, admin=True).request("DELETE", "/api/employees/3").status == 204
    assert Client(first).get("/employees/3/photo").status == 404
    assert s3.list_objects_v2(Bucket=STORE["s3_bucket"]).get("KeyCount") == 0
    assert admin.send_json("POST", "/api/employees", NEW).status == 201


@dynamodb_only
def test_sessions_and_failed_sign_ins_are_shared_by_clones(tmp_hosts):
    first, second = clones(tmp_hosts)
    browser = Client(first)
    assert browser.sign_in().status == 303
    # The session cookie from one clone is good on the other (a load balancer may send the next request there).
    browser.app = second
    assert "Sign out" in browser.get("/").text
    # Failed sign-ins through either clone count against one limit.
    for attempt in range(auth.MAX_FAILURES):
        assert Client((first, second)[attempt % 2]).sign_in(password="guess guess guess").status == 403
    assert Client(second).sign_in().status == 429
    limited = Client(first).request(
        "DELETE", "/api/employees/1", headers={"Authorization": basic("admin", ADMIN_PASSWORD)}
    )
    assert limited.status == 429


@dynamodb_only
def test_missing_table_gives_503_a_log_line_and_a_friendly_page(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="employee_directory")
    table = f"later-{uuid.uuid4().hex[:8]}"
    app = make_app(tmp_path, dynamodb_table=table)  # starts: the table may come later
    assert any("store unavailable at start" in line and table in line for line in store_errors(caplog))
    caplog.clear()
    health = Client(app).get("/healthz")
    assert health.status == 503
    assert health.json()["status"] == "error"
    assert health.json()["store"] == "dynamodb"
    assert table not in health.text  # the reason is for the log, not for visitors
    [line] = store_errors(caplog)
    assert f"DynamoDB table {table}" in line
    assert "ResourceNotFoundException" in line
    assert "\n" not in line
    page = Client(app).get("/")
    assert page.status == 503
    assert page.header("Content-Type").startswith("text/html")
    assert "cannot reach its data" in page.text
    assert "Traceback" not in page.text
    assert "botocore" not in page.text
    api = Client(app, admin=False).send_json("POST", "/api/employees", NEW)
    assert api.status == 503
    assert api.json()["error"].startswith("The directory cannot reach its data")
    assert page.header("Retry-After") == "10"
    # Once the table exists, the same app loads the seed and serves: no restart needed. /healthz answers from its
    # last look at the store until store_check_seconds (15 by default) have passed.
    create_table(STORE["aws_endpoint_url"], table)
    assert Client(app).get("/healthz").status == 503
    started = app.clock()
    app.clock = lambda: started + 15
    health = Client(app).get("/healthz")
    assert (health.status, health.json()["status"], health.json()["employees"]) == (200, "ok", 2)
    assert Client(app).get("/").status == 200


@dynamodb_only
def test_missing_bucket_gives_503_and_a_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="employee_directory")
    app = make_app(tmp_path, s3_bucket="no-such-bucket")
    health = Client(app).get("/healthz")
    assert health.status == 503
    [line] = store_errors(caplog)
    assert line == (
        "healthz: store unavailable: S3 bucket no-such-bucket: list_objects_v2: NoSuchBucket:"
        " The specified bucket does not exist"
    )


@dynamodb_only
def test_denied_bucket_gives_503_and_a_log_line(app, caplog):
    # The shared moto server does not enforce IAM: botocore's Stubber gives S3's answers to a role that may not
    # use the bucket (AccessDenied to ListObjectsV2 and PutObject). test_bucket_denied_by_the_policy_... shows the same
    # with a real policy, on a moto server of its own that enforces IAM.
    caplog.set_level(logging.INFO, logger="employee_directory")
    admin = Client(app, admin=True)
    with Stubber(app.store._s3) as s3:
        s3.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        health = Client(app).get("/healthz")
        s3.add_client_error("put_object", "AccessDenied", "Access Denied", 403)
        upload = admin.request("PUT", "/api/employees/1/photo", GIF_PIXEL, "image/gif")
    assert health.status == 503
    assert upload.status == 503
    assert upload.json()["error"].startswith("The directory cannot reach its data")
    assert store_errors(caplog) == [
        f"healthz: store unavailable: S3 bucket {app.store.bucket}: list_objects_v2: AccessDenied: Access Denied",
        f"store unavailable: PUT /api/employees/1/photo: S3 bucket {app.store.bucket}: put_object: AccessDenied:"
        " Access Denied",
    ]
    assert Client(app).get("/api/employees/1").json()["has_photo"] is False


@dynamodb_only
def test_unreachable_endpoint_gives_503(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="employee_directory")
    app = make_app(tmp_path, aws_endpoint_url="http://127.0.0.1:9")
    assert Client(app).get("/healthz").status == 503
    assert "Could not connect to the endpoint URL" in store_errors(caplog)[-1]
    assert Client(app).get("/employees/1").status == 503


@dynamodb_only
def test_dynamodb_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="store dynamodb needs dynamodb_table, aws_region"):
        make_app(tmp_path, dynamodb_table="", aws_region="")
    with pytest.raises(ValueError, match="store: 'mysql' is not one of sqlite, dynamodb"):
        make_app(tmp_path, store="mysql")
    with pytest.raises(ValueError, match="seed: 50 employees; the dynamodb store loads at most 49"):
        make_app(tmp_path, seed=[dict(SEED[0], email=f"p{n}@example.com") for n in range(50)])


@pytest.mark.sqlite_only
def test_unreadable_database_gives_503_page_and_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="employee_directory")
    app = make_app(tmp_path)
    (tmp_path / "directory.sqlite3").unlink()
    (tmp_path / "directory.sqlite3").mkdir()
    page = Client(app).get("/")
    assert page.status == 503
    assert "cannot reach its data" in page.text
    assert "SQLite database" in store_errors(caplog)[-1]


@dynamodb_only
def test_each_process_makes_its_own_clients(app, monkeypatch):
    # gunicorn --preload forks workers from a master that already talked to the store: no shared connections.
    master = app.store._dynamodb
    assert app.store._dynamodb is master
    monkeypatch.setattr(store_dynamodb.os, "getpid", lambda: -1)
    worker = app.store._dynamodb
    assert worker is not master
    assert app.store._s3 is app.store._s3
    assert Client(app).get("/healthz").json()["employees"] == 2


@dynamodb_only
def test_credentials_come_from_the_instance_role_through_imdsv2(tmp_path, imds, monkeypatch):
    url, requests = imds
    # No key anywhere but the metadata service: boto3's default chain must find the instance role there.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    app = make_app(tmp_path, metadata_url=url)
    health = Client(app).get("/healthz").json()
    assert (health["status"], health["employees"]) == ("ok", 2)
    credentials = app.store._dynamodb._request_signer._credentials.get_frozen_credentials()
    assert credentials.access_key == "ASIAFAKEINSTANCEROLE"
    assert credentials.token == "instance-role-session-token"
    role = "/latest/meta-data/iam/security-credentials/"
    assert ("GET", role) in requests
    assert ("GET", role + FakeIMDS.role) in requests
    # Every read of the metadata service came after a token (IMDSv2).
    assert requests[0] == ("PUT", "/latest/api/token")


@pytest.fixture
def moto_with_iam(tmp_path):
    """A moto server of its own that enforces IAM after its first 6 requests (the set-up's), on 127.0.0.1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="6")
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@dynamodb_only
def test_bucket_denied_by_the_policy_gives_503_and_a_log_line(tmp_path, moto_with_iam, monkeypatch, caplog):
    # A role allowed the table and another bucket, not this one: moto evaluates the policy against the bucket's
    # ARN (for DynamoDB it checks the actions, not the table's ARN; the sandbox's IAM front checks both).
    caplog.set_level(logging.INFO, logger="employee_directory")
    table, bucket = "directory", "directory-photos"
    create_table_and_bucket(moto_with_iam, table, bucket)  # requests 1 and 2
    admin = {"region_name": REGION, "endpoint_url": moto_with_iam}
    boto3.client("s3", **admin).create_bucket(
        Bucket="other-photos", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="directory-app")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::other-photos", "arn:aws:s3:::other-photos/*"],
            },
        ],
    }
    iam.put_user_policy(UserName="directory-app", PolicyName="app", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="directory-app")["AccessKey"]  # request 6: IAM applies from now on
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    app = make_app(tmp_path, dynamodb_table=table, s3_bucket=bucket, aws_endpoint_url=moto_with_iam)
    health = Client(app).get("/healthz")
    assert health.status == 503
    assert store_errors(caplog) == [
        f"healthz: store unavailable: S3 bucket {bucket}: list_objects_v2: AccessDenied: Access Denied"
    ]
    # The table is allowed: the directory is readable, the seed was loaded; only the photos are refused.
    assert Client(app).get("/api/employees").json()["count"] == 2
    upload = Client(app, admin=True).request("PUT", "/api/employees/1/photo", GIF_PIXEL, "image/gif")
    assert upload.status == 503
    assert "put_object: AccessDenied" in store_errors(caplog)[-1]
    # The same credentials may use the bucket the policy names: the refusal was the policy's, by the bucket's ARN.
    s3 = boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], **admin)
    assert s3.head_bucket(Bucket="other-photos")["ResponseMetadata"]["HTTPStatusCode"] == 200


def cancelled(*codes):
    """The error DynamoDB gives a cancelled TransactWriteItems, one reason per operation."""
    return {
        "service_error_code": "TransactionCanceledException",
        "service_message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "http_status_code": 400,
        "service_error_meta": {"Code": "TransactionCanceledException"},
        "response_meta": {},
        "modeled_fields": {"CancellationReasons": [{"Code": code} for code in codes]},
    }


@dynamodb_only
def test_an_add_that_meets_another_transaction_is_retried(app, monkeypatch):
    # moto never reports a conflict between transactions; DynamoDB does, when two clones write the directory item
    # (its count of employees) at the same moment. Such a write is retried, a failed condition is not.
    monkeypatch.setattr(store_dynamodb.time, "sleep", lambda _seconds: None)
    employee = {"pk": {"S": "employee#7"}, "id": {"N": "7"}, **{k: {"S": v} for k, v in NEW.items()}}
    employee.update(created_at={"S": "2026-01-01T00:00:00Z"}, updated_at={"S": "2026-01-01T00:00:00Z"})
    with Stubber(app.store._dynamodb) as dynamodb:
        dynamodb.add_response("update_item", {"Attributes": {"next_id": {"N": "7"}}})
        dynamodb.add_client_error("transact_write_items", **cancelled("None", "None", "TransactionConflict"))
        dynamodb.add_response("transact_write_items", {})
        dynamodb.add_response("get_item", {"Item": employee})
        assert app.store.create(dict(NEW))["id"] == 7
        dynamodb.assert_no_pending_responses()
        dynamodb.add_response("update_item", {"Attributes": {"next_id": {"N": "8"}}})
        dynamodb.add_client_error("transact_write_items", **cancelled("None", "ConditionalCheckFailed", "None"))
        with pytest.raises(DuplicateEmail):
            app.store.create(dict(NEW))
        dynamodb.assert_no_pending_responses()


@dynamodb_only
def test_an_update_that_loses_a_race_reads_again(app):
    # Another clone changed the employee between our read and our conditional write: read it again, then write.
    with Stubber(app.store._dynamodb) as dynamodb:
        first = {"pk": {"S": "employee#1"}, "id": {"N": "1"}, "version": {"N": "1"}}
        first.update({k: {"S": v} for k, v in SEED[0].items()})
        second = dict(first, version={"N": "2"}, location={"S": "Paris"})
        done = dict(second, version={"N": "3"}, job_title={"S": "Countess"})
        dynamodb.add_response("get_item", {"Item": first})
        dynamodb.add_client_error("transact_write_items", **cancelled("ConditionalCheckFailed"))
        dynamodb.add_response("get_item", {"Item": second})
        # The second write keeps the other clone's change (Paris), adds ours, and is conditional on version 2.
        values = {f":{k}": {"S": v} for k, v in dict(SEED[0], location="Paris", job_title="Countess").items()}
        values.update({":version": {"N": "2"}, ":now": ANY, ":one": {"N": "1"}})
        update = {
            "Key": {"pk": {"S": "employee#1"}},
            "TableName": app.store.table,
            "UpdateExpression": ANY,
            "ExpressionAttributeNames": ANY,
            "ConditionExpression": "version = :version",
            "ExpressionAttributeValues": values,
        }
        dynamodb.add_response("transact_write_items", {}, expected_params={"TransactItems": [{"Update": update}]})
        dynamodb.add_response("get_item", {"Item": done})
        app.store.update(1, {"job_title": "Countess"})
        dynamodb.assert_no_pending_responses()


@dynamodb_only
def test_a_seed_the_table_refuses_is_reported(tmp_path, monkeypatch, caplog):
    # A cancelled seed transaction that no other clone caused (here: an item DynamoDB finds invalid) is not retried.
    caplog.set_level(logging.INFO, logger="employee_directory")
    app = make_app(tmp_path, dynamodb_table=f"later-{uuid.uuid4().hex[:8]}")  # not seeded: no table yet
    with Stubber(app.store._dynamodb) as dynamodb:
        dynamodb.add_response("get_item", {})
        dynamodb.add_client_error("transact_write_items", **cancelled("None", "ValidationError", "None"))
        health = Client(app).get("/healthz")
        dynamodb.assert_no_pending_responses()
    assert health.status == 503
    assert "loading the seed employees: An error occurred (TransactionCanceledException)" in store_errors(caplog)[-1]
