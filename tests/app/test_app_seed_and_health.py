"""Seeding happens once; /healthz and the footer report instance metadata."""

import itertools

import pytest
from directory_testing import NO_METADATA, SEED, Client, make_app
from employee_directory import __version__
from employee_directory.metadata import InstanceMetadata


def names(app):
    return [e["name"] for e in Client(app).get("/api/employees").json()["employees"]]


def test_seed_is_loaded_on_first_start_only(tmp_path):
    app = make_app(tmp_path)
    assert names(app) == ["Ada Lovelace", "Grace Hopper"]
    Client(app, admin=True).request("DELETE", "/api/employees/1")
    # A restart (or a rerun of the role with another seed) keeps what users did.
    other_seed = [dict(SEED[0], name="Someone Else", email="else@example.com")]
    again = make_app(tmp_path, seed=other_seed)
    assert names(again) == ["Grace Hopper"]


def test_seed_is_not_reloaded_after_everyone_is_deleted(tmp_path):
    app = make_app(tmp_path)
    client = Client(app, admin=True)
    for employee in client.get("/api/employees").json()["employees"]:
        assert client.request("DELETE", employee["url"]).status == 204
    assert names(make_app(tmp_path)) == []


def test_invalid_seed_fails_loudly_and_seeds_nothing(tmp_path):
    with pytest.raises(ValueError, match="seed employee 2: Email must be an address"):
        make_app(tmp_path, seed=[SEED[0], dict(SEED[1], email="bad")])
    assert names(make_app(tmp_path, seed=SEED)) == ["Ada Lovelace", "Grace Hopper"]


def test_duplicate_seed_emails_fail_loudly(tmp_path):
    with pytest.raises(ValueError, match="distinct email"):
        make_app(tmp_path, seed=[SEED[0], SEED[0]])


def test_csrf_secret_is_created_once_and_kept(tmp_path):
    make_app(tmp_path)
    secret = (tmp_path / "csrf-secret").read_bytes()
    assert len(secret) == 32
    make_app(tmp_path)
    assert (tmp_path / "csrf-secret").read_bytes() == secret


def test_healthz_without_metadata_omits_instance_fields(client):
    result = client.get("/healthz")
    assert result.status == 200
    data = result.json()
    assert data["status"] == "ok"
    assert data["version"] == __version__
    assert data["hostname"]
    assert data["employees"] == 2
    assert "instance_id" not in data
    assert "availability_zone" not in data
    assert "Instance <code>" not in client.get("/").text


def test_healthz_and_footer_with_imdsv2(tmp_path, imds):
    url, requests = imds
    client = Client(make_app(tmp_path, metadata_url=url))
    data = client.get("/healthz").json()
    assert data["instance_id"] == "i-0123456789abcdef0"
    assert data["availability_zone"] == "us-east-1b"
    footer = client.get("/").text.split('<footer id="served-by">')[1]
    assert "i-0123456789abcdef0" in footer
    assert "us-east-1b" in footer
    # Token first, then both items; cached afterwards: no further requests.
    assert requests == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/instance-id"),
        ("GET", "/latest/meta-data/placement/availability-zone"),
    ]


def test_metadata_failure_is_retried_after_a_second_then_less_and_less_often():
    now = [100.0]
    metadata = InstanceMetadata(NO_METADATA, timeout=0.5, retry_after=60, clock=lambda: now[0])
    calls = []
    metadata._fetch = lambda: calls.append(now[0]) or {}
    # Every 0.5 s for three minutes: asked 1, 2, 4, ... seconds apart, then once a minute.
    for _step in range(360):
        assert metadata.get() == {}
        now[0] += 0.5
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]


def test_metadata_missed_once_is_served_a_second_later():
    now = [100.0]
    metadata = InstanceMetadata(NO_METADATA, timeout=0.5, clock=lambda: now[0])
    answers = [{}, {"instance_id": "i-0123456789abcdef0"}]
    metadata._fetch = lambda: answers.pop(0)
    assert metadata.get() == {}
    now[0] += 0.9
    assert metadata.get() == {}
    now[0] += 0.2
    assert metadata.get() == {"instance_id": "i-0123456789abcdef0"}
    # Kept: no further fetch (answers is empty now).
    now[0] += 1000
    assert metadata.get() == {"instance_id": "i-0123456789abcdef0"}


def test_metadata_without_token_support_is_omitted(tmp_path, imds):
    url, requests = imds
    # An IMDSv1-only service would refuse the PUT; a wrong path stands in for it here.
    metadata = InstanceMetadata(url + "/v1-only", timeout=0.5)
    assert metadata.get() == {}
    assert requests == [("PUT", "/v1-only/latest/api/token")]


@pytest.mark.sqlite_only
def test_healthz_reports_a_broken_database(tmp_path):
    app = make_app(tmp_path)
    (tmp_path / "directory.sqlite3").unlink()
    (tmp_path / "directory.sqlite3").mkdir()
    result = Client(app).get("/healthz")
    assert result.status == 503
    assert result.json()["status"] == "error"


def test_head_request_has_headers_but_no_body(client):
    result = client.request("HEAD", "/healthz")
    assert result.status == 200
    assert result.body == b""
    assert int(result.header("Content-Length")) > 0
