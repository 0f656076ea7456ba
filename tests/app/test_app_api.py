"""The JSON API: status codes, messages, and that bad requests change nothing."""

import pytest
from directory_testing import NEW, image_bytes, opened, set_updated_at

# A small opaque PNG: served as the JPEG the app makes of it, the same size.
PNG = image_bytes("PNG", (40, 30))


def snapshot(client):
    return client.get("/api/employees").json()


def test_list_returns_seed_sorted_by_name(client):
    result = client.get("/api/employees")
    assert result.status == 200
    assert result.header("Content-Type") == "application/json"
    data = result.json()
    assert data["count"] == 2
    assert [e["name"] for e in data["employees"]] == ["Ada Lovelace", "Grace Hopper"]


def test_crud_round_trip(client):
    created = client.send_json("POST", "/api/employees", NEW)
    assert created.status == 201
    employee = created.json()
    assert created.header("Location") == f"/api/employees/{employee['id']}"
    assert {k: employee[k] for k in NEW} == NEW
    assert employee["has_photo"] is False

    url = f"/api/employees/{employee['id']}"
    assert client.get(url).json()["email"] == NEW["email"]

    patched = client.send_json("PATCH", url, {"location": "  Washington  "})
    assert patched.status == 200
    assert patched.json()["location"] == "Washington"
    assert patched.json()["name"] == NEW["name"]

    replaced = client.send_json("PUT", url, dict(patched.json(), job_title="Research Scientist"))
    assert replaced.status == 200
    assert replaced.json()["job_title"] == "Research Scientist"

    deleted = client.request("DELETE", url)
    assert deleted.status == 204
    assert deleted.body == b""
    assert client.get(url).status == 404
    assert snapshot(client)["count"] == 2


def test_search_matches_any_field_case_insensitively(client):
    assert [e["name"] for e in client.get("/api/employees?q=navy").json()["employees"]] == ["Grace Hopper"]
    assert [e["name"] for e in client.get("/api/employees?q=LONDON").json()["employees"]] == ["Ada Lovelace"]
    assert client.get("/api/employees?q=nobody-here").json()["count"] == 0


def test_search_wildcards_are_literal(client):
    assert client.get("/api/employees?q=%25").json()["count"] == 0
    assert client.get("/api/employees?q=_").json()["count"] == 0


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({k: v for k, v in NEW.items() if k != "name"}, "name", "Name is required."),
        (dict(NEW, email="not-an-address"), "email", "Email must be an address like name@example.com."),
        (dict(NEW, job_title="x" * 101), "job_title", "Job title must be at most 100 characters."),
        (dict(NEW, department="   "), "department", "Department is required."),
        (dict(NEW, location=42), "location", "Location must be a string."),
        (dict(NEW, name="Bad\x00Name"), "name", "Name must not contain control characters."),
        (dict(NEW, salary="1"), "_unknown", "Unknown field(s): salary."),
    ],
)
def test_invalid_employee_is_422_with_message_and_nothing_changes(client, payload, field, message):
    before = snapshot(client)
    result = client.send_json("POST", "/api/employees", payload)
    assert result.status == 422
    assert result.json()["fields"][field] == message
    assert message in result.json()["error"]
    assert snapshot(client) == before


def test_invalid_update_is_422_and_nothing_changes(client):
    before = snapshot(client)
    assert client.send_json("PATCH", "/api/employees/1", {"email": "nope"}).status == 422
    result = client.send_json("PUT", "/api/employees/1", {"name": "Only a name"})
    assert result.status == 422
    assert result.json()["fields"]["email"] == "Email is required."
    assert snapshot(client) == before


def test_duplicate_email_is_409(client):
    result = client.send_json("POST", "/api/employees", dict(NEW, email="ADA@example.com"))
    assert result.status == 409
    assert "already exists" in result.json()["error"]
    assert snapshot(client)["count"] == 2


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, content_type):
    before = snapshot(client)
    result = client.request("POST", "/api/employees", b'{"name": "x"}', content_type)
    assert result.status == 415
    assert "Content-Type: application/json" in result.json()["error"]
    assert snapshot(client) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"\xff\xfe", "not valid JSON")],
)
def test_malformed_json_is_400(client, body, message):
    result = client.request("POST", "/api/employees", body, "application/json; charset=utf-8")
    assert result.status == 400
    assert message in result.json()["error"]


def test_oversized_json_body_is_413(client):
    result = client.request("POST", "/api/employees", b"{" + b" " * (70 * 1024) + b"}", "application/json")
    assert result.status == 413
    assert "too large" in result.json()["error"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_id_is_404(client, method):
    before = snapshot(client)
    result = client.send_json(method, "/api/employees/999", NEW)
    assert result.status == 404
    assert result.json() == {"error": "No employee has ID 999."}
    assert snapshot(client) == before


def test_non_numeric_id_is_404(client):
    assert client.get("/api/employees/abc").status == 404


def test_method_not_allowed_is_405_with_allow_header(client):
    result = client.request("DELETE", "/api/employees")
    assert result.status == 405
    assert result.header("Allow") == "GET, HEAD, POST"
    assert "not allowed" in result.json()["error"]


def test_sql_injection_payloads_are_plain_data(client):
    evil = "x'); DROP TABLE employee; --"
    created = client.send_json("POST", "/api/employees", dict(NEW, name=evil))
    assert created.status == 201
    assert created.json()["name"] == evil
    assert client.get("/api/employees?q=' OR '1'='1").json()["count"] == 0
    assert client.get("/api/employees").json()["count"] == 3


def test_photo_upload_round_trip_and_delete(client):
    result = client.request("PUT", "/api/employees/1/photo", PNG, "image/png")
    assert result.status == 200
    assert result.json()["photo_url"] == "/employees/1/photo"
    photo = client.get("/employees/1/photo")
    assert photo.status == 200
    assert photo.header("Content-Type") == "image/jpeg"
    assert opened(photo.body)[:2] == ("JPEG", (40, 30))
    assert client.request("DELETE", "/api/employees/1/photo").status == 204
    assert client.get("/employees/1/photo").status == 404


def test_photo_wrong_type_is_415_and_nothing_changes(client):
    result = client.request("PUT", "/api/employees/1/photo", b"<svg onload=alert(1)>", "image/svg+xml")
    assert result.status == 415
    assert "Content-Type image/jpeg, image/png" in result.json()["error"]
    # Declared as PNG, but the bytes are not.
    assert client.request("PUT", "/api/employees/1/photo", b"GIF89a....", "image/png").status == 415
    assert client.get("/api/employees/1").json()["has_photo"] is False


def test_photo_too_large_is_413_and_nothing_changes(client):
    result = client.request("PUT", "/api/employees/1/photo", PNG + b"\x00" * 5000, "image/png")
    assert result.status == 413
    assert "4096 bytes" in result.json()["error"]
    assert client.get("/api/employees/1").json()["has_photo"] is False


def test_photo_for_unknown_employee_is_404(client):
    assert client.request("PUT", "/api/employees/999/photo", PNG, "image/png").status == 404


def test_photo_can_be_read_through_the_api(client, visitor):
    assert client.request("PUT", "/api/employees/1/photo", PNG, "image/png").status == 200
    photo = visitor.get("/api/employees/1/photo")
    assert photo.status == 200
    assert photo.header("Content-Type") == "image/jpeg"
    assert opened(photo.body)[:2] == ("JPEG", (40, 30))
    assert visitor.get("/api/employees/2/photo").status == 404
    missing = visitor.get("/api/employees/999/photo")
    assert missing.status == 404
    assert missing.json() == {"error": "No employee has ID 999."}


def test_patch_without_changes_keeps_updated_at(client, app):
    old = "2001-01-01T00:00:00Z"
    set_updated_at(app, 1, old)
    url = "/api/employees/1"
    assert client.send_json("PATCH", url, {}).json()["updated_at"] == old
    same = client.get(url).json()
    assert client.send_json("PATCH", url, {"location": same["location"]}).json()["updated_at"] == old
    assert client.send_json("PUT", url, same).json()["updated_at"] == old
    changed = client.send_json("PATCH", url, {"location": "Paris"}).json()
    assert changed["updated_at"] != old
    assert changed["location"] == "Paris"


def test_list_pages_with_limit_and_offset(client):
    for number in range(3):
        client.send_json("POST", "/api/employees", dict(NEW, name=f"Zed {number}", email=f"zed{number}@example.com"))
    first = client.get("/api/employees?limit=2").json()
    assert [e["name"] for e in first["employees"]] == ["Ada Lovelace", "Grace Hopper"]
    assert (first["count"], first["total"], first["offset"], first["limit"]) == (2, 5, 0, 2)
    second = client.get(first["next"]).json()
    assert [e["name"] for e in second["employees"]] == ["Zed 0", "Zed 1"]
    last = client.get(second["next"]).json()
    assert [e["name"] for e in last["employees"]] == ["Zed 2"]
    assert last["next"] is None
    searched = client.get("/api/employees?q=zed&limit=2").json()
    assert searched["total"] == 3
    assert searched["next"] == "/api/employees?q=zed&limit=2&offset=2"
    assert client.get("/api/employees?offset=4").json()["count"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit='0' is not a whole number from 1 to 1000."),
        ("limit=1001", "limit='1001' is not a whole number from 1 to 1000."),
        ("limit=ten", "limit='ten' is not a whole number from 1 to 1000."),
        ("offset=-1", "offset='-1' is not a whole number at least 0."),
    ],
)
def test_list_refuses_bad_paging(client, query, message):
    result = client.get("/api/employees?" + query)
    assert result.status == 400
    assert result.json() == {"error": message}
