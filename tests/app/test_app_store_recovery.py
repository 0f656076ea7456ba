"""The store recovers without a restart: credentials found once the metadata service answers, expired ones renewed;
/healthz asks the store at most every store_check_seconds."""

import http.server
import socket
import threading

import botocore.exceptions
import botocore.session
import pytest
from directory_testing import NEW, Client, FakeIMDS, make_app
from employee_directory import store_dynamodb
from employee_directory.store_common import StoreUnavailable

dynamodb_only = pytest.mark.dynamodb_only


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def instance_role_only(tmp_path, monkeypatch):
    """No key anywhere but the metadata service (as on an instance)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


@dynamodb_only
def test_app_started_while_the_metadata_service_refuses_serves_once_it_answers(tmp_path, instance_role_only):
    port = free_port()
    # Nothing listens there yet: every connection to the metadata service is refused while the app starts.
    app = make_app(tmp_path, metadata_url=f"http://127.0.0.1:{port}")
    assert Client(app).get("/healthz").status == 503
    FakeIMDS.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), FakeIMDS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        started = app.clock()
        app.clock = lambda: started + app.store_check_seconds
        health = Client(app).get("/healthz")
        assert (health.status, health.json()["employees"]) == (200, 2)
        # The same process serves writes too, signed with the instance role's credentials.
        assert Client(app, admin=True).send_json("POST", "/api/employees", NEW).status == 201
        credentials = app.store._dynamodb._request_signer._credentials.get_frozen_credentials()
        assert credentials.access_key == "ASIAFAKEINSTANCEROLE"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dynamodb_only
def test_the_credential_chain_retries_the_metadata_service(tmp_path, monkeypatch):
    sessions = []
    real = botocore.session.get_session

    def recording():
        sessions.append(real())
        return sessions[-1]

    monkeypatch.setattr(store_dynamodb.botocore.session, "get_session", recording)
    make_app(tmp_path)
    assert sessions
    core = sessions[-1]
    assert int(core.get_config_variable("metadata_service_num_attempts")) >= 3
    assert float(core.get_config_variable("metadata_service_timeout")) >= 2


@dynamodb_only
def test_expired_credentials_make_new_clients_and_the_call_is_made_again(tmp_path):
    app = make_app(tmp_path)
    store = app.store
    first = store._dynamodb
    calls = []

    def expired(**params):
        calls.append(params)
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "ExpiredTokenException", "Message": "The security token in the request is expired"}},
            "GetItem",
        )

    first.get_item = expired
    assert Client(app).get("/api/employees/1").status == 200
    assert len(calls) == 1
    assert store._dynamodb is not first


@dynamodb_only
def test_no_credentials_make_new_clients_once_then_503(tmp_path):
    app = make_app(tmp_path)
    made = []
    real = app.store._renewed

    def renewed(client):
        fresh = real(client)
        made.append(fresh)

        def no_credentials(**params):
            raise botocore.exceptions.NoCredentialsError()

        fresh.get_item = no_credentials
        return fresh

    app.store._renewed = renewed

    def no_credentials(**params):
        raise botocore.exceptions.NoCredentialsError()

    app.store._dynamodb.get_item = no_credentials
    assert Client(app).get("/api/employees/1").status == 503
    assert len(made) == 1  # one new client per call, not a loop


def test_healthz_asks_the_store_at_most_every_store_check_seconds(tmp_path):
    app = make_app(tmp_path)
    now = [1000.0]
    app.clock = lambda: now[0]
    asked = []
    real = app.store.health

    def health():
        asked.append(now[0])
        return real()

    app.store.health = health
    client = Client(app)
    assert app.store_check_seconds == 15
    for _second in range(10):
        assert client.get("/healthz").json()["employees"] == 2
        now[0] += 1
    assert asked == [1000.0]  # ten checks in ten seconds: the store was asked once
    now[0] = 1015.0
    assert client.get("/healthz").status == 200
    assert asked == [1000.0, 1015.0]


def test_healthz_keeps_a_failed_check_until_the_next_look(tmp_path):
    app = make_app(tmp_path, store_check_seconds=5)
    now = [0.0]
    app.clock = lambda: now[0]
    real = app.store.health

    def down():
        raise StoreUnavailable("down for the test")

    app.store.health = down
    assert Client(app).get("/healthz").status == 503
    app.store.health = real
    now[0] = 4.9
    assert Client(app).get("/healthz").status == 503
    now[0] = 5.0
    assert Client(app).get("/healthz").status == 200
