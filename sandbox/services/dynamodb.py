"""DynamoDB: IAM on each table or index a request names; one request at a time."""

from __future__ import annotations

import json
import threading

from .. import config
from ..errors import json_error
from .base import Answer, Request, Service, region_of

_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
             "Get": "GetItem"}  # fmt: skip


def dynamodb_requested(region: str, action: str, body: bytes) -> list[tuple[str, str]]:
    """DynamoDB checks each table (or index) a request names: ``arn:aws:dynamodb:R:A:table/T[/index/I]``."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}

    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{config.ACCOUNT_ID}:table/{name}"

    if action in ("TransactWriteItems", "TransactGetItems"):
        return [
            (f"dynamodb:{_TRANSACT.get(op, op)}", table(spec.get("TableName", "")))
            for item in doc.get("TransactItems", [])
            for op, spec in item.items()
        ] or [(f"dynamodb:{action}", "*")]
    if isinstance(doc.get("RequestItems"), dict):
        return [(f"dynamodb:{action}", table(name)) for name in doc["RequestItems"]]
    if doc.get("ResourceArn"):
        return [(f"dynamodb:{action}", doc["ResourceArn"])]
    if doc.get("TableName"):
        arn = table(doc["TableName"])
        return [(f"dynamodb:{action}", arn + (f"/index/{doc['IndexName']}" if doc.get("IndexName") else ""))]
    return [(f"dynamodb:{action}", "*")]


class DynamoDb(Service):
    name = "dynamodb"

    def __init__(self, core, moto):
        super().__init__(core, moto)
        # moto undoes a failed TransactWriteItems by restoring a copy of the tables taken when it began, which
        # would also undo other clients' writes made meanwhile (lost or phantom items when clones write at once):
        # DynamoDB requests are answered one at a time, as DynamoDB's own isolation guarantees.
        self.lock = threading.Lock()

    def requested(self, req: Request) -> list[tuple[str, str]]:
        return dynamodb_requested(region_of(req), req.action, req.raw)

    def answer(self, req: Request) -> Answer:
        with self.lock:
            return self.moto(req.environ, req.raw)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        # DynamoDB answers every client error, a refusal too, with HTTP 400.
        return json_error(code, message, 400 if status < 500 else status, "application/x-amz-json-1.0")
