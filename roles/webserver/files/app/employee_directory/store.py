"""Where the directory keeps its data: one interface, two backends.

``SQLiteStore`` (this module) keeps everything in one SQLite file on the host: right for a single host.
``DynamoStore`` (store_dynamodb.py) keeps employees, sessions and failed sign-ins in one DynamoDB table and
photos in an S3 bucket, so every clone behind one address serves the same directory. ``open_store`` picks
one from the app's settings; boto3 is imported only for the DynamoDB backend.

Both raise the errors of store_common.py: ``DuplicateEmail`` when an address is taken and ``StoreUnavailable``
(one line saying why) when the store cannot be reached or used. Imports go one way: this module imports
store_dynamodb.py (in ``open_store`` only), and both import store_common.py.
"""

import contextlib
import sqlite3

from . import collation
from .store_common import DuplicateEmail, StoreUnavailable, clean_seed
from .validation import FIELDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS employee (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    job_title TEXT NOT NULL,
    department TEXT NOT NULL,
    location TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    photo BLOB,
    photo_type TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE IF NOT EXISTS app_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_session (
    token_sha256 TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    password_stamp TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failure (
    client TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_in_failure_client ON sign_in_failure (client, at);
CREATE TABLE IF NOT EXISTS form_submission (
    token_sha256 TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    location TEXT,
    flash TEXT
);
"""

# Every statement is a literal with placeholders; no SQL is ever assembled from input.
# Lists and records never carry the photo itself, so they stay small.
_SELECT = (
    "SELECT id, name, job_title, department, location, email, photo_type IS NOT NULL AS has_photo,"
    " created_at, updated_at FROM employee"
)
# fold() is collation.fold, registered on each connection: the same matching and order as the DynamoDB store.
_MATCH = (
    " WHERE (:q = '' OR instr(fold(name), :q) OR instr(fold(job_title), :q) OR instr(fold(department), :q)"
    " OR instr(fold(location), :q) OR instr(fold(email), :q)) AND (:department = '' OR fold(department) = :department)"
)
_COUNT = "SELECT count(*) FROM employee"
_PAGE = " LIMIT :limit OFFSET :offset"
_MARK_SEEDED = "INSERT INTO app_state (key, value) VALUES ('seeded', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))"
_ORDER = " ORDER BY fold(name), name, id"
_INSERT = (
    "INSERT INTO employee (name, job_title, department, location, email)"
    " VALUES (:name, :job_title, :department, :location, :email)"
)
_UPDATE = (
    "UPDATE employee SET name = :name, job_title = :job_title, department = :department, location = :location,"
    " email = :email, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = :id"
)
_SET_PHOTO = (
    "UPDATE employee SET photo = ?, photo_type = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?"
)


STORES = ("sqlite", "dynamodb")


def open_store(settings):
    """The store the settings name (``store``: sqlite, the default, or dynamodb)."""
    kind = settings.get("store") or "sqlite"
    if kind == "sqlite":
        return SQLiteStore(settings["database"])
    if kind == "dynamodb":
        # Only here: a host on SQLite needs no boto3.
        from .store_dynamodb import DynamoStore

        return DynamoStore(
            table=settings.get("dynamodb_table"),
            bucket=settings.get("s3_bucket"),
            region=settings.get("aws_region"),
            endpoint_url=settings.get("aws_endpoint_url") or None,
            metadata_url=settings.get("metadata_url") or None,
        )
    raise ValueError(f"store: {kind!r} is not one of {', '.join(STORES)}")


def _record(row):
    record = dict(row)
    record["has_photo"] = bool(record["has_photo"])
    return record


class SQLiteStore:
    """The directory's database: one SQLite file, one connection per call."""

    kind = "sqlite"

    def __init__(self, path):
        self.path = path

    @contextlib.contextmanager
    def _connect(self):
        try:
            conn = sqlite3.connect(self.path, timeout=10)
            conn.row_factory = sqlite3.Row
            conn.create_function("fold", 1, collation.fold, deterministic=True)
            try:
                with conn:
                    yield conn
            finally:
                conn.close()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def health(self):
        """The number of employees; StoreUnavailable when the database does not answer."""
        with self._connect() as conn:
            return conn.execute(_COUNT).fetchone()[0]

    def initialise(self, seed):
        """Create the schema; insert ``seed`` only the first time ever.

        A marker row remembers that seeding happened, so deleting every
        employee later does not bring the seed back, and a changed seed never
        overwrites what users have entered.  Returns True when it seeded.
        """
        seed = clean_seed(seed)
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc
        try:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM app_state WHERE key = 'seeded'").fetchone():
                    conn.execute("ROLLBACK")
                    return False
                for fields in seed:
                    self._insert(conn, fields)
                conn.execute(_MARK_SEEDED)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return True
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def _insert(conn, fields):
        return conn.execute(_INSERT, fields).lastrowid

    def search(self, query="", limit=-1, offset=0, department=""):
        """Employees whose text fields contain ``query``, in ``department`` if given, by name (see collation.py).

        ``limit`` -1 means all of them.
        """
        params = {"q": collation.fold(query), "department": collation.fold(department), "limit": limit}
        with self._connect() as conn:
            rows = conn.execute(_SELECT + _MATCH + _ORDER + _PAGE, dict(params, offset=offset))
            return [_record(row) for row in rows]

    def page(self, query, limit, offset, department=""):
        """(up to ``limit`` matching employees from ``offset``, by name; how many match in all)."""
        params = {"q": collation.fold(query), "department": collation.fold(department)}
        with self._connect() as conn:
            total = conn.execute(_COUNT + _MATCH, params).fetchone()[0]
        return self.search(query, limit, offset, department), total

    def departments(self):
        """Every department (one spelling each, whatever the case and accents), in the directory's order."""
        with self._connect() as conn:
            return collation.departments(row[0] for row in conn.execute("SELECT DISTINCT department FROM employee"))

    def get(self, employee_id):
        with self._connect() as conn:
            row = conn.execute(_SELECT + " WHERE id = ?", (employee_id,)).fetchone()
        return _record(row) if row else None

    def create(self, fields):
        try:
            with self._connect() as conn:
                employee_id = self._insert(conn, fields)
        except sqlite3.IntegrityError as exc:
            raise DuplicateEmail(fields["email"]) from exc
        return self.get(employee_id)

    def update(self, employee_id, fields):
        """Change the given fields, keep the others; None when there is no such employee."""
        try:
            with self._connect() as conn:
                row = conn.execute(_SELECT + " WHERE id = ?", (employee_id,)).fetchone()
                if row is None:
                    return None
                current = {name: row[name] for name in FIELDS}
                merged = dict(current, **fields)
                # Nothing new (an empty PATCH, a PUT of what GET gave): updated_at stays.
                if merged != current:
                    conn.execute(_UPDATE, dict(merged, id=employee_id))
        except sqlite3.IntegrityError as exc:
            raise DuplicateEmail(fields.get("email")) from exc
        return self.get(employee_id)

    def delete(self, employee_id):
        with self._connect() as conn:
            return conn.execute("DELETE FROM employee WHERE id = ?", (employee_id,)).rowcount == 1

    def set_photo(self, employee_id, data, media_type):
        """Store (or with ``data`` None, remove) a photo; False when there is no such employee."""
        with self._connect() as conn:
            cursor = conn.execute(_SET_PHOTO, (data, media_type if data is not None else None, employee_id))
            return cursor.rowcount == 1

    def photo(self, employee_id):
        """(bytes, media type) of an employee's photo, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT photo, photo_type FROM employee WHERE id = ? AND photo IS NOT NULL", (employee_id,)
            ).fetchone()
        return (bytes(row["photo"]), row["photo_type"]) if row else None

    # -- the administrator's sessions and failed sign-ins (see auth.py) --------------------------------

    def add_session(self, token_sha256, expires_at, password_stamp, now):
        with self._connect() as conn:
            conn.execute("DELETE FROM admin_session WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO admin_session (token_sha256, expires_at, password_stamp) VALUES (?, ?, ?)",
                (token_sha256, expires_at, password_stamp),
            )

    def session_valid(self, token_sha256, now, password_stamp):
        with self._connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM admin_session WHERE token_sha256 = ? AND expires_at > ? AND password_stamp = ?",
                (token_sha256, now, password_stamp),
            ).fetchone()
        return row is not None

    def delete_session(self, token_sha256):
        with self._connect() as conn:
            conn.execute("DELETE FROM admin_session WHERE token_sha256 = ?", (token_sha256,))

    def record_failure(self, client, now, forget_before):
        with self._connect() as conn:
            conn.execute("DELETE FROM sign_in_failure WHERE at < ?", (forget_before,))
            conn.execute("INSERT INTO sign_in_failure (client, at) VALUES (?, ?)", (client, now))

    def recent_failures(self, client, since):
        """Times of ``client``'s failed sign-ins since ``since``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT at FROM sign_in_failure WHERE client = ? AND at >= ? ORDER BY at", (client, since)
            )
            return [row[0] for row in rows]

    def clear_failures(self, client):
        with self._connect() as conn:
            conn.execute("DELETE FROM sign_in_failure WHERE client = ?", (client,))

    # -- forms sent once (see page_handlers.py, Pages.once) ---------------------------------------------

    def claim_form(self, token_sha256, now, expires_at):
        """None when this call claimed the form token; else what the first sending answered (empty: not yet)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM form_submission WHERE expires_at <= ?", (now,))
            claimed = conn.execute(
                "INSERT OR IGNORE INTO form_submission (token_sha256, expires_at) VALUES (?, ?)",
                (token_sha256, expires_at),
            ).rowcount
            if claimed:
                return None
            row = conn.execute(
                "SELECT location, flash FROM form_submission WHERE token_sha256 = ?", (token_sha256,)
            ).fetchone()
        return {"location": row["location"], "flash": row["flash"]} if row and row["location"] else {}

    def finish_form(self, token_sha256, location, flash):
        with self._connect() as conn:
            conn.execute(
                "UPDATE form_submission SET location = ?, flash = ? WHERE token_sha256 = ?",
                (location, flash, token_sha256),
            )

    def release_form(self, token_sha256):
        with self._connect() as conn:
            conn.execute("DELETE FROM form_submission WHERE token_sha256 = ?", (token_sha256,))
