"""SQLite storage of employees. Every statement is parameterised."""

import contextlib
import sqlite3

from .validation import FIELDS, clean_employee

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
"""

# Never the photo itself: lists and records stay small.
_COLUMNS = "id, name, job_title, department, location, email, photo_type IS NOT NULL AS has_photo, created_at, updated_at"
_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"


class DuplicateEmail(Exception):
    """Another employee already has this email address."""


def _record(row):
    record = dict(row)
    record["has_photo"] = bool(record["has_photo"])
    return record


def _like_pattern(text):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped + "%"


class Store:
    """The directory's database: one SQLite file, one connection per call."""

    def __init__(self, path):
        self.path = path

    @contextlib.contextmanager
    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def initialise(self, seed):
        """Create the schema; insert ``seed`` only the first time ever.

        A marker row remembers that seeding happened, so deleting every
        employee later does not bring the seed back, and a changed seed never
        overwrites what users have entered.  Returns True when it seeded.
        """
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM app_state WHERE key = 'seeded'").fetchone():
                    conn.execute("ROLLBACK")
                    return False
                for number, item in enumerate(seed, start=1):
                    fields, errors = clean_employee(item)
                    if errors:
                        raise ValueError("seed employee %d: %s" % (number, " ".join(errors.values())))
                    self._insert(conn, fields)
                conn.execute("INSERT INTO app_state (key, value) VALUES ('seeded', " + _NOW + ")")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return True
        except sqlite3.IntegrityError as exc:
            raise ValueError("seed employees must have distinct email addresses") from exc
        finally:
            conn.close()

    @staticmethod
    def _insert(conn, fields):
        names = list(FIELDS)
        sql = "INSERT INTO employee (%s) VALUES (%s)" % (", ".join(names), ", ".join("?" for _ in names))
        return conn.execute(sql, [fields[name] for name in names]).lastrowid

    def search(self, query=""):
        """Employees whose text fields contain ``query`` (case-insensitive), by name."""
        sql = "SELECT " + _COLUMNS + " FROM employee"
        params = []
        if query:
            sql += " WHERE " + " OR ".join(name + " LIKE ? ESCAPE '\\'" for name in FIELDS)
            params = [_like_pattern(query)] * len(FIELDS)
        sql += " ORDER BY name COLLATE NOCASE, id"
        with self._connect() as conn:
            return [_record(row) for row in conn.execute(sql, params)]

    def count(self):
        with self._connect() as conn:
            return conn.execute("SELECT count(*) FROM employee").fetchone()[0]

    def get(self, employee_id):
        with self._connect() as conn:
            row = conn.execute("SELECT " + _COLUMNS + " FROM employee WHERE id = ?", (employee_id,)).fetchone()
        return _record(row) if row else None

    def create(self, fields):
        try:
            with self._connect() as conn:
                employee_id = self._insert(conn, fields)
        except sqlite3.IntegrityError as exc:
            raise DuplicateEmail(fields["email"]) from exc
        return self.get(employee_id)

    def update(self, employee_id, fields):
        """Change the given fields; None when there is no such employee."""
        if fields:
            assignments = ", ".join(name + " = ?" for name in fields if name in FIELDS)
            params = [fields[name] for name in fields if name in FIELDS] + [employee_id]
            try:
                with self._connect() as conn:
                    conn.execute(
                        "UPDATE employee SET " + assignments + ", updated_at = " + _NOW + " WHERE id = ?", params
                    )
            except sqlite3.IntegrityError as exc:
                raise DuplicateEmail(fields["email"]) from exc
        return self.get(employee_id)

    def delete(self, employee_id):
        with self._connect() as conn:
            return conn.execute("DELETE FROM employee WHERE id = ?", (employee_id,)).rowcount == 1

    def set_photo(self, employee_id, data, media_type):
        """Store (or with ``data`` None, remove) a photo; False when there is no such employee."""
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE employee SET photo = ?, photo_type = ?, updated_at = " + _NOW + " WHERE id = ?",
                (data, media_type if data is not None else None, employee_id),
            )
            return cursor.rowcount == 1

    def photo(self, employee_id):
        """(bytes, media type) of an employee's photo, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT photo, photo_type FROM employee WHERE id = ? AND photo IS NOT NULL", (employee_id,)
            ).fetchone()
        return (bytes(row["photo"]), row["photo_type"]) if row else None
