"""The DynamoDB store lists employees from its index: sessions and failed sign-ins, however many, cost a listing
nothing; they carry expires_at for the table's TTL."""

import time

import pytest
from directory_testing import NEW, SEED, Client, make_app
from employee_directory.store_dynamodb import EMPLOYEE_INDEX

dynamodb_only = pytest.mark.dynamodb_only


def read_items(client, app):
    """(the page's status, items DynamoDB read for it: ScannedCount of every Query and Scan, by operation)."""
    read = {}

    def count(http_response, parsed, model, **kwargs):
        if model.name in ("Query", "Scan"):
            read[model.name] = read.get(model.name, 0) + parsed.get("ScannedCount", 0)

    events = app.store._dynamodb.meta.events
    events.register("after-call.dynamodb", count)
    try:
        status = client.get("/").status
    finally:
        events.unregister("after-call.dynamodb", count)
    return status, read


@dynamodb_only
def test_listing_reads_only_employees_however_many_sessions_expired(tmp_path):
    app = make_app(tmp_path)
    client = Client(app, admin=True)
    assert client.send_json("POST", "/api/employees", NEW).status == 201
    before = read_items(client, app)
    # Queries only, each reading the 3 employees (the page, and the departments it offers, read them once each).
    status, read = before
    assert status == 200 and set(read) == {"Query"} and read["Query"] % 3 == 0 and read["Query"] <= 6
    ddb, table = app.store._dynamodb, app.store.table
    expired = int(time.time()) - 3600
    for start in range(0, 500, 25):
        items = [
            {"PutRequest": {"Item": {"pk": {"S": f"session#{n:064x}"}, "expires_at": {"N": str(expired)},
                                     "password_stamp": {"S": "x"}}}}
            for n in range(start, start + 25)
        ]  # fmt: skip
        ddb.batch_write_item(RequestItems={table: items})
    # 500 expired sessions later, a listing reads the same 3 employees, and no Scan.
    assert read_items(client, app) == before


@dynamodb_only
def test_sessions_and_failed_sign_ins_carry_expires_at(tmp_path):
    app = make_app(tmp_path)
    client = Client(app)
    client.sign_in()
    assert Client(app).sign_in(password="not the password").status != 303
    items = app.store._dynamodb.scan(TableName=app.store.table)["Items"]
    now = time.time()
    for prefix in ("session#", "signin-failures#"):  # failures: the client's and the account's counters
        found = [i for i in items if i["pk"]["S"].startswith(prefix)]
        assert found, prefix
        for item in found:
            assert now < int(item["expires_at"]["N"]) <= now + 24 * 3600 + 1
    # Only employees are in the index.
    listed = app.store._dynamodb.scan(TableName=app.store.table, IndexName=EMPLOYEE_INDEX)["Items"]
    assert sorted(i["pk"]["S"] for i in listed) == ["employee#1", "employee#2"]


@dynamodb_only
def test_a_table_written_before_the_index_is_indexed_once_at_start(tmp_path):
    app = make_app(tmp_path)
    ddb, table = app.store._dynamodb, app.store.table
    # As an older version left it: employees without kind, a directory without employees_indexed.
    for number in (1, 2):
        ddb.update_item(TableName=table, Key={"pk": {"S": f"employee#{number}"}}, UpdateExpression="REMOVE kind")
    ddb.update_item(TableName=table, Key={"pk": {"S": "directory"}}, UpdateExpression="REMOVE employees_indexed")
    assert app.store.search() == []
    restarted = make_app(tmp_path)
    assert sorted(e["name"] for e in restarted.store.search()) == sorted(e["name"] for e in SEED)
    directory = ddb.get_item(TableName=table, Key={"pk": {"S": "directory"}})["Item"]
    assert directory["employees_indexed"] == {"BOOL": True}
