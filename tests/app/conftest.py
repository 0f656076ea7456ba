"""Fixtures of the employee-directory app tests.

Every test that builds the app runs twice: on SQLite (a file in the test's tmp_path) and on DynamoDB + S3 (a
fresh table and bucket, for that test alone, in a moto server on a random 127.0.0.1 port, started once per
session, answering one request at a time: see OneRequestAtATime). Tests marked ``sqlite_only`` or
``dynamodb_only`` run on that store only.
"""

import http.server
import logging
import threading
import uuid

import boto3
import directory_testing
import pytest
import werkzeug.serving
from directory_testing import Client, FakeIMDS, make_app
from employee_directory.store_dynamodb import TABLE_SHAPE
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

REGION = "eu-west-1"


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: the test is about the SQLite store; not run on DynamoDB")
    config.addinivalue_line("markers", "dynamodb_only: the test is about DynamoDB + S3; not run on SQLite")


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        stores = ["sqlite", "dynamodb"]
        for marker in ("sqlite", "dynamodb"):
            if metafunc.definition.get_closest_marker(f"{marker}_only"):
                stores = [marker]
        metafunc.parametrize("store", stores, indirect=True)


class OneRequestAtATime:
    """moto's TransactWriteItems is not atomic under concurrent requests (a failed one restores a copy of the
    tables taken when it began, undoing or reviving what others wrote meanwhile); DynamoDB's transactions are
    serializable. Answering one request at a time restores that, while the app's clients still race between
    requests, which is what the tests of conditional writes need."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


@pytest.fixture(scope="session")
def moto_url():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request of the moto server
    app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def create_table(endpoint_url, table):
    """The table as the app needs it (partition key pk, the employees index, on-demand)."""
    boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url).create_table(TableName=table, **TABLE_SHAPE)


def create_table_and_bucket(endpoint_url, table, bucket):
    create_table(endpoint_url, table)
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


@pytest.fixture(autouse=True)
def store(request, monkeypatch):
    """The store every make_app of this test uses: "sqlite" or "dynamodb" (see the module's docstring)."""
    directory_testing.STORE.clear()
    if request.param == "dynamodb":
        endpoint_url = request.getfixturevalue("moto_url")
        # The app takes credentials from boto3's default chain only: here, the environment.
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)
        suffix = uuid.uuid4().hex[:12]
        table, bucket = f"directory-{suffix}", f"directory-photos-{suffix}"
        create_table_and_bucket(endpoint_url, table, bucket)
        directory_testing.STORE.update(
            store="dynamodb",
            dynamodb_table=table,
            s3_bucket=bucket,
            aws_region=REGION,
            aws_endpoint_url=endpoint_url,
        )
    yield request.param
    directory_testing.STORE.clear()


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    """The administrator: signed in, and sending HTTP Basic credentials to the API."""
    return Client(app, admin=True)


@pytest.fixture
def visitor(app):
    """Anyone the firewall lets in: not signed in, no credentials."""
    return Client(app)


@pytest.fixture
def imds():
    FakeIMDS.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeIMDS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", FakeIMDS.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
