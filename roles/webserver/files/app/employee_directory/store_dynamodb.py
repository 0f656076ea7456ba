"""The directory in DynamoDB (employees, sessions, failed sign-ins) and S3 (photos), shared by every clone.

One table, partition key ``pk`` (string), no sort key, and one global secondary index, ``employees`` (partition
key ``kind``, string; sort key ``id``, number; every attribute projected). Items, by the shape of their key:

- ``employee#<id>``: one employee: ``id`` (number), the five fields, ``photo_type`` (only with a photo),
  ``created_at``, ``updated_at``, ``version`` (a number every write increments; each write is
  conditional on the version it read, so two clones never overwrite each other's change unseen), and ``kind``
  (``employee``: what puts the item, and no other, in the ``employees`` index).
- ``email#<address in lower case>``: ``id`` of the employee who has that address. It is written in the same
  TransactWriteItems as the employee, under ``attribute_not_exists(pk)``: the unique email is enforced by
  DynamoDB itself, across clones, case-insensitively.
- ``directory``: ``next_id`` (the last ID handed out; UpdateItem ADD gives each new employee its own),
  ``employees`` (how many there are, kept in the same transactions), ``seeded_at``. Written once, by the
  one transaction that loads the seed employees under ``attribute_not_exists(pk)``: the seed is loaded once
  into the table, however many clones start at once. ``employees_indexed``: every employee has ``kind`` (a table
  an older version wrote gets it once, at the next start).
- ``session#<SHA-256 of the token>``: a signed-in browser: ``expires_at`` (epoch seconds), ``password_stamp``.
- ``signin-failures#<client>``: ``at`` (times of recent failed sign-ins), ``expires_at``.
- ``form#<SHA-256 of a form token>``: a form being sent or sent: ``expires_at``, then ``location`` and ``flash``
  of the answer, which a repeated sending of the same form gets again.

``expires_at`` is the attribute of the table's TTL (the flow enables it; DynamoDB deletes expired items within
days, and the app ignores them meanwhile).
Photos are S3 objects ``photos/<id>`` with their media type, served through the app (the bucket stays private).

Limits: an item is at most 400 KB (an employee is well under 2 KB; photos are in S3 for this reason). Listing
and search Query the ``employees`` index, ``SCAN_PAGE`` items a request (and at most 1 MB, DynamoDB's own
limit), then sort by name and cut the page in the app: a page view costs about half a read unit per 4 KB of
employees, whatever else the table holds (sessions and failed sign-ins are not in the index). An index is
read eventually consistently: an employee another clone has just added, changed or deleted may be listed as
before for a moment (well under a second on DynamoDB); an employee's own page (GetItem) is strongly
consistent. A far larger directory wants an index on the name. A seed holds at most ``MAX_SEED`` employees
(one transaction of at most 100 items).

Credentials come only from boto3's default chain (on EC2: the instance role, through IMDSv2). No key is
ever read from the app's settings. ``endpoint_url`` is for the sandbox only; empty on AWS.
"""

import contextlib
import decimal
import os
import random
import time

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from . import collation
from .store_common import DuplicateEmail, StoreUnavailable, clean_seed
from .validation import FIELDS

SCAN_PAGE = 500
# The global secondary index that lists employees: only employee items carry its partition key (KIND, "employee"),
# so a listing reads employees and nothing else, however many sessions and failed sign-ins the table holds.
EMPLOYEE_INDEX = "employees"
KIND = "kind"
# The table as CreateTable makes it (the flow's playbooks/tasks/store.yml says the same in YAML; tests and the
# benchmark use this).
TABLE_SHAPE = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": KIND, "AttributeType": "S"},
        {"AttributeName": "id", "AttributeType": "N"},
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": EMPLOYEE_INDEX,
            "KeySchema": [{"AttributeName": KIND, "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
# 2 items per employee (employee and email) + the directory item, in one transaction of at most 100.
MAX_SEED = 49
# Optimistic writes (conditional on the version read) give up after this many lost races.
_ATTEMPTS = 5
_DIRECTORY = {"pk": {"S": "directory"}}
_CONFLICT_CODES = {"None", "TransactionConflict"}
_RECORD = ("id", "name", "job_title", "department", "location", "email", "photo_type", "created_at", "updated_at")
# Codes of a request signed with temporary credentials that have expired (STS's, DynamoDB's own).
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException"}
# The instance role's credentials, asked of the metadata service: a fleet booting at once asks it together, so a
# slow or refused answer is tried again before a worker starts without credentials (botocore's defaults: 1 try, 1 s).
METADATA_ATTEMPTS = 3
METADATA_TIMEOUT = 2
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _employee_key(employee_id):
    return {"pk": {"S": f"employee#{int(employee_id)}"}}


def _email_key(email):
    return {"pk": {"S": "email#" + email.lower()}}


def _plain(item):
    return {name: _deserialize(value) for name, value in item.items()}


def _typed(values):
    return {name: _serialize(value) for name, value in values.items()}


def _record(item):
    """An employee as the app shows it (as SQLiteStore returns it)."""
    record = {name: item[name] for name in _RECORD if name in item}
    record["id"] = int(record["id"])
    record["has_photo"] = bool(record.pop("photo_type", None))
    return record


def _one_line(text):
    return " ".join(str(text).split())


def _cancelled_because(error, index):
    """Whether a cancelled transaction failed at operation ``index`` on its condition."""
    reasons = error.response.get("CancellationReasons") or []
    return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"


def _count_change(delta):
    """The transaction's part that keeps the directory item's count of employees."""
    return {
        "Update": {
            "Key": _DIRECTORY,
            "UpdateExpression": "ADD employees :delta",
            "ExpressionAttributeValues": {":delta": {"N": str(delta)}},
        }
    }


def _conflict_only(error):
    """A write that lost only to another transaction on the same item (worth a retry), not to a condition."""
    code = error.response.get("Error", {}).get("Code", "")
    if code == "TransactionConflictException":
        return True
    codes = {reason.get("Code") for reason in error.response.get("CancellationReasons") or []}
    # "None": the operations that would have passed; no condition failed.
    return code == "TransactionCanceledException" and "TransactionConflict" in codes and codes <= _CONFLICT_CODES


class _Race(Exception):
    """Another writer changed the item between our read and our conditional write."""


class DynamoStore:
    """The directory in one DynamoDB table and one S3 bucket (see the module's docstring)."""

    kind = "dynamodb"

    def __init__(self, table, bucket, region, endpoint_url=None, metadata_url=None):
        missing = [
            name
            for name, value in (("dynamodb_table", table), ("s3_bucket", bucket), ("aws_region", region))
            if not value
        ]
        if missing:
            raise ValueError(f"store dynamodb needs {', '.join(missing)} in the settings")
        self.table = table
        self.bucket = bucket
        config = botocore.config.Config(
            region_name=region,
            connect_timeout=2,
            read_timeout=5,
            retries={"mode": "standard", "max_attempts": 3},
            # An endpoint given by address (the sandbox) cannot serve bucket names as host names.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._endpoint_url = endpoint_url
        self._config = config
        # The instance role's credentials come from the same metadata service the app asks for its instance ID.
        self._metadata_url = metadata_url
        self._clients_pid = None
        self._clients = None

    def _client(self, service):
        # gunicorn --preload builds the app (and may seed) in its master, then forks the workers: a worker
        # must not share the master's pooled connections, so each process makes its own clients.
        if self._clients_pid != os.getpid():
            core = botocore.session.get_session()
            if self._metadata_url:
                core.set_config_variable("ec2_metadata_service_endpoint", self._metadata_url)
            core.set_config_variable("metadata_service_num_attempts", METADATA_ATTEMPTS)
            core.set_config_variable("metadata_service_timeout", METADATA_TIMEOUT)
            session = boto3.session.Session(botocore_session=core)
            self._clients = {
                name: session.client(name, endpoint_url=self._endpoint_url, config=self._config)
                for name in ("dynamodb", "s3")
            }
            self._clients_pid = os.getpid()
        return self._clients[service]

    def _renewed(self, client):
        """``client``'s service again, from clients made anew: the credential chain is asked again (a client made
        while the metadata service did not answer has no credentials, and keeps none, for the life of the process)."""
        self._clients_pid = None
        return self._client(client.meta.service_model.service_name)

    @property
    def _dynamodb(self):
        return self._client("dynamodb")

    @property
    def _s3(self):
        return self._client("s3")

    # -- calls, and what their errors mean -------------------------------------------------------------

    def _call(self, client, operation, expected=(), **params):
        """One AWS call; ClientError codes in ``expected`` reach the caller, anything else is StoreUnavailable."""
        where = f"DynamoDB table {self.table}" if client is self._dynamodb else f"S3 bucket {self.bucket}"
        attempt, renewed = 0, False
        while True:
            attempt += 1
            try:
                return getattr(client, operation)(**params)
            except (botocore.exceptions.NoCredentialsError, botocore.exceptions.ClientError) as exc:
                expired = isinstance(exc, botocore.exceptions.NoCredentialsError) or (
                    exc.response.get("Error", {}).get("Code") in _EXPIRED_CODES
                )
                if expired and not renewed:
                    client, renewed = self._renewed(client), True
                    continue
                if isinstance(exc, botocore.exceptions.NoCredentialsError):
                    raise StoreUnavailable(_one_line(f"{where}: {operation}: {exc}")) from exc
                # Another clone's transaction held the same item for a moment (the directory item's count, an
                # email): try again after a short, random pause.
                if _conflict_only(exc) and attempt < _ATTEMPTS:
                    time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 (a pause, not a secret)
                    continue
                self._explain(where, operation, expected, exc)
            except botocore.exceptions.BotoCoreError as exc:
                raise StoreUnavailable(_one_line(f"{where}: {operation}: {exc}")) from exc

    @staticmethod
    def _explain(where, operation, expected, exc):
        """Raise ``exc`` when its code is ``expected``, else StoreUnavailable saying what went wrong."""
        code = exc.response.get("Error", {}).get("Code", "")
        if code in expected:
            raise exc
        message = exc.response.get("Error", {}).get("Message") or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        explained = {"404": "not found", "403": "access denied"}.get(code, message)
        raise StoreUnavailable(_one_line(f"{where}: {operation}: {code or status}: {explained}")) from exc

    def _db(self, operation, expected=(), **params):
        if operation != "transact_write_items":
            params["TableName"] = self.table
        return self._call(self._dynamodb, operation, expected, **params)

    def _get(self, key):
        item = self._db("get_item", Key=key, ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def _transact(self, items, expected=("TransactionCanceledException",)):
        for item in items:
            next(iter(item.values()))["TableName"] = self.table
        return self._db("transact_write_items", expected, TransactItems=items)

    # -- health and the seed -----------------------------------------------------------------------------

    def health(self):
        """The number of employees, after checking that the table and the bucket answer."""
        directory = self._get(_DIRECTORY)
        # ListObjectsV2 rather than HeadBucket: both need s3:ListBucket on AWS, but moto (the sandbox) checks
        # HeadBucket against an action of its own name, which no real policy grants.
        self._call(self._s3, "list_objects_v2", Bucket=self.bucket, Prefix="photos/", MaxKeys=1)
        return int(directory["employees"]) if directory else 0

    def initialise(self, seed):
        """Load ``seed`` into the table unless any app ever did (one conditional transaction). True when it seeded."""
        seed = clean_seed(seed)
        if len(seed) > MAX_SEED:
            raise ValueError(f"seed: {len(seed)} employees; the dynamodb store loads at most {MAX_SEED}")
        for _attempt in range(_ATTEMPTS):
            directory = self._get(_DIRECTORY)
            if directory:
                if not directory.get("employees_indexed"):
                    self._index_older_employees()
                return False
            now = _now()
            directory = {"pk": "directory", "next_id": len(seed), "employees": len(seed), "seeded_at": now}
            directory["employees_indexed"] = True
            items = [{"Put": {"Item": _typed(directory), "ConditionExpression": "attribute_not_exists(pk)"}}]
            for number, fields in enumerate(seed, start=1):
                items.extend(self._new_employee_items(number, fields, now))
            try:
                self._transact(items)
            except botocore.exceptions.ClientError as exc:
                reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons") or []}
                if not reasons & {"ConditionalCheckFailed", "TransactionConflict"}:
                    raise StoreUnavailable(
                        _one_line(f"DynamoDB table {self.table}: loading the seed employees: {exc}")
                    ) from exc
                # Another clone seeded (or is seeding) at this moment: look again.
                time.sleep(0.2)
                continue
            return True
        raise StoreUnavailable(f"DynamoDB table {self.table}: could not load the seed employees (kept conflicting)")

    def _index_older_employees(self):
        """Give KIND to the employees a version before the employees index wrote (once per table: one Scan)."""
        params = {
            "FilterExpression": "begins_with(pk, :prefix) AND attribute_not_exists(#kind)",
            "ProjectionExpression": "pk",
            "ExpressionAttributeNames": {"#kind": KIND},
            "ExpressionAttributeValues": {":prefix": {"S": "employee#"}},
        }
        while True:
            page = self._db("scan", **params)
            for item in page.get("Items", []):
                # An employee deleted meanwhile stays deleted.
                with contextlib.suppress(botocore.exceptions.ClientError):
                    self._db(
                        "update_item",
                        ("ConditionalCheckFailedException",),
                        Key={"pk": item["pk"]},
                        UpdateExpression="SET #kind = :employee",
                        ConditionExpression="attribute_exists(pk)",
                        ExpressionAttributeNames={"#kind": KIND},
                        ExpressionAttributeValues={":employee": {"S": "employee"}},
                    )
            if not page.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self._db(
            "update_item",
            Key=_DIRECTORY,
            UpdateExpression="SET employees_indexed = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    @staticmethod
    def _new_employee_items(employee_id, fields, now):
        employee = dict(fields, pk=f"employee#{employee_id}", id=employee_id, created_at=now, updated_at=now, version=1)
        employee[KIND] = "employee"
        email = {"pk": "email#" + fields["email"].lower(), "id": employee_id}
        return [
            {"Put": {"Item": _typed(employee), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"Item": _typed(email), "ConditionExpression": "attribute_not_exists(pk)"}},
        ]

    # -- employees ---------------------------------------------------------------------------------------

    def _employees(self):
        """Every employee (without photos): a Query of the employees index, page by page."""
        params = {
            "IndexName": EMPLOYEE_INDEX,
            "KeyConditionExpression": "#kind = :employee",
            "ProjectionExpression": ", ".join(f"#{name}" for name in _RECORD),
            "ExpressionAttributeNames": dict({f"#{name}": name for name in _RECORD}, **{"#kind": KIND}),
            "ExpressionAttributeValues": {":employee": {"S": "employee"}},
            "Limit": SCAN_PAGE,
        }
        employees = []
        while True:
            page = self._db("query", **params)
            employees.extend(_record(_plain(item)) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return employees

    def _matching(self, query, department=""):
        needle, department = collation.fold(query), collation.fold(department)
        employees = [e for e in self._employees() if collation.matches(e, needle, department, FIELDS)]
        employees.sort(key=collation.sort_key)
        return employees

    def search(self, query="", limit=-1, offset=0, department=""):
        """Employees whose text fields contain ``query``, in ``department`` if given, by name; ``limit`` -1: all."""
        found = self._matching(query, department)[offset:]
        return found if limit < 0 else found[:limit]

    def page(self, query, limit, offset, department=""):
        """(up to ``limit`` matching employees from ``offset``, by name; how many match in all): one Query."""
        found = self._matching(query, department)
        return found[offset : offset + limit], len(found)

    def departments(self):
        """Every department (one spelling each, whatever the case and accents), in the directory's order."""
        return collation.departments({employee["department"] for employee in self._employees()})

    def get(self, employee_id):
        item = self._get(_employee_key(employee_id))
        return _record(item) if item else None

    def create(self, fields):
        allotted = self._db(
            "update_item",
            Key=_DIRECTORY,
            UpdateExpression="ADD next_id :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        employee_id = int(_plain(allotted["Attributes"])["next_id"])
        items = [*self._new_employee_items(employee_id, fields, _now()), _count_change(1)]
        try:
            self._transact(items)
        except botocore.exceptions.ClientError as exc:
            if _cancelled_because(exc, 1):
                raise DuplicateEmail(fields["email"]) from exc
            raise StoreUnavailable(f"DynamoDB table {self.table}: adding an employee: {exc}") from exc
        return self.get(employee_id)

    def _versioned(self, item):
        """A condition that the employee item is still the one read."""
        return {
            "ConditionExpression": "version = :version",
            "ExpressionAttributeValues": {":version": _serialize(item["version"])},
        }

    def _retrying(self, attempt):
        """Run ``attempt`` until it does not lose a race with another writer."""
        for _attempt in range(_ATTEMPTS):
            try:
                return attempt()
            except _Race:
                continue
        raise StoreUnavailable(f"DynamoDB table {self.table}: an employee kept changing under this write")

    def update(self, employee_id, fields):
        """Change the given fields, keep the others; None when there is no such employee."""
        return self._retrying(lambda: self._update_once(employee_id, fields))

    def _update_once(self, employee_id, fields):
        item = self._get(_employee_key(employee_id))
        if item is None:
            return None
        current = {name: item[name] for name in FIELDS}
        merged = dict(current, **fields)
        # Nothing new (an empty PATCH, a PUT of what GET gave): updated_at stays.
        if merged == current:
            return _record(item)
        names = {f"#{name}": name for name in FIELDS}
        condition = self._versioned(item)
        update = {
            "Key": _employee_key(employee_id),
            "UpdateExpression": "SET "
            + ", ".join(f"#{name} = :{name}" for name in FIELDS)
            + ", updated_at = :now ADD version :one",
            "ExpressionAttributeNames": names,
            "ConditionExpression": condition["ConditionExpression"],
            "ExpressionAttributeValues": dict(
                _typed({f":{name}": merged[name] for name in FIELDS}),
                **condition["ExpressionAttributeValues"],
                **{":now": {"S": _now()}, ":one": {"N": "1"}},
            ),
        }
        items = [{"Update": update}]
        if merged["email"].lower() != current["email"].lower():
            items.append(
                {
                    "Delete": {
                        "Key": _email_key(current["email"]),
                        "ConditionExpression": "id = :id",
                        "ExpressionAttributeValues": {":id": {"N": str(int(employee_id))}},
                    }
                }
            )
            items.append(
                {
                    "Put": {
                        "Item": _typed({"pk": "email#" + merged["email"].lower(), "id": int(employee_id)}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            self._transact(items)
        except botocore.exceptions.ClientError as exc:
            if len(items) == 3 and _cancelled_because(exc, 2):
                raise DuplicateEmail(fields.get("email")) from exc
            raise _Race from exc
        return self.get(employee_id)

    def delete(self, employee_id):
        deleted = self._retrying(lambda: self._delete_once(employee_id))
        if deleted and deleted.get("photo_type"):
            self._call(self._s3, "delete_object", Bucket=self.bucket, Key=f"photos/{int(employee_id)}")
        return bool(deleted)

    def _delete_once(self, employee_id):
        item = self._get(_employee_key(employee_id))
        if item is None:
            return None
        items = [
            {"Delete": dict(self._versioned(item), Key=_employee_key(employee_id))},
            {"Delete": {"Key": _email_key(item["email"])}},
            _count_change(-1),
        ]
        try:
            self._transact(items)
        except botocore.exceptions.ClientError as exc:
            raise _Race from exc
        return item

    # -- photos: S3 objects photos/<id>, their media type on the employee's item ------------------------

    def set_photo(self, employee_id, data, media_type):
        """Store (or with ``data`` None, remove) a photo; False when there is no such employee."""
        key = f"photos/{int(employee_id)}"
        if data is not None:
            self._call(self._s3, "put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=media_type)
            expression, values = (
                "SET photo_type = :type, updated_at = :now ADD version :one",
                {":type": {"S": media_type}, ":now": {"S": _now()}, ":one": {"N": "1"}},
            )
        else:
            expression, values = (
                "REMOVE photo_type SET updated_at = :now ADD version :one",
                {":now": {"S": _now()}, ":one": {"N": "1"}},
            )
        try:
            self._db(
                "update_item",
                ("ConditionalCheckFailedException",),
                Key=_employee_key(employee_id),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ConditionExpression="attribute_exists(pk)",
            )
        except botocore.exceptions.ClientError:
            if data is not None:
                self._call(self._s3, "delete_object", Bucket=self.bucket, Key=key)
            return False
        if data is None:
            self._call(self._s3, "delete_object", Bucket=self.bucket, Key=key)
        return True

    def photo(self, employee_id):
        """(bytes, media type) of an employee's photo, or None."""
        item = self._get(_employee_key(employee_id))
        if not item or not item.get("photo_type"):
            return None
        try:
            found = self._call(
                self._s3, "get_object", ("NoSuchKey",), Bucket=self.bucket, Key=f"photos/{int(employee_id)}"
            )
        except botocore.exceptions.ClientError:
            return None
        return found["Body"].read(), found.get("ContentType") or item["photo_type"]

    # -- the administrator's sessions and failed sign-ins (see auth.py) --------------------------------

    def add_session(self, token_sha256, expires_at, password_stamp, now):
        item = {"pk": f"session#{token_sha256}", "expires_at": int(expires_at) + 1, "password_stamp": password_stamp}
        self._db("put_item", Item=_typed(item))

    def session_valid(self, token_sha256, now, password_stamp):
        item = self._get({"pk": {"S": f"session#{token_sha256}"}})
        return bool(item) and item["expires_at"] > now and item["password_stamp"] == password_stamp

    def delete_session(self, token_sha256):
        self._db("delete_item", Key={"pk": {"S": f"session#{token_sha256}"}})

    def record_failure(self, client, now, forget_before):
        key = {"pk": {"S": f"signin-failures#{client}"}}
        updated = self._db(
            "update_item",
            Key=key,
            UpdateExpression="SET #at = list_append(if_not_exists(#at, :empty), :now), expires_at = :expires",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues=_typed(
                {":empty": [], ":now": [decimal.Decimal(repr(now))], ":expires": int(now) + 24 * 3600}
            ),
            ReturnValues="ALL_NEW",
        )
        times = _plain(updated["Attributes"])["at"]
        stale = 0
        while stale < len(times) and times[stale] < forget_before:
            stale += 1
        if stale:
            # Forget the old ones, unless another writer changed the list's head meanwhile.
            removals = ", ".join(f"#at[{index}]" for index in range(stale))
            with contextlib.suppress(botocore.exceptions.ClientError):
                self._db(
                    "update_item",
                    ("ConditionalCheckFailedException",),
                    Key=key,
                    UpdateExpression="REMOVE " + removals,
                    ConditionExpression="#at[0] = :first",
                    ExpressionAttributeNames={"#at": "at"},
                    ExpressionAttributeValues={":first": _serialize(times[0])},
                )

    def recent_failures(self, client, since):
        """Times of ``client``'s failed sign-ins since ``since``, oldest first."""
        item = self._get({"pk": {"S": f"signin-failures#{client}"}})
        return sorted(float(at) for at in (item or {}).get("at", []) if at >= since)

    def clear_failures(self, client):
        self._db("delete_item", Key={"pk": {"S": f"signin-failures#{client}"}})

    # -- forms sent once (see page_handlers.py, Pages.once) ---------------------------------------------

    def claim_form(self, token_sha256, now, expires_at):
        """None when this call claimed the form token; else what the first sending answered (empty: not yet)."""
        key = {"pk": {"S": f"form#{token_sha256}"}}
        try:
            self._db(
                "put_item",
                ("ConditionalCheckFailedException",),
                Item=dict(key, expires_at={"N": str(int(expires_at))}),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except botocore.exceptions.ClientError:
            item = self._get(key) or {}
            return {"location": item["location"], "flash": item.get("flash", "")} if item.get("location") else {}
        return None

    def finish_form(self, token_sha256, location, flash):
        self._db(
            "update_item",
            Key={"pk": {"S": f"form#{token_sha256}"}},
            UpdateExpression="SET #location = :location, flash = :flash",
            ExpressionAttributeNames={"#location": "location"},
            ExpressionAttributeValues=_typed({":location": location, ":flash": flash or ""}),
        )

    def release_form(self, token_sha256):
        self._db("delete_item", Key={"pk": {"S": f"form#{token_sha256}"}})
