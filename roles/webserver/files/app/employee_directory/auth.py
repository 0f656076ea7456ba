"""Who may change the directory: the administrator, by password.

Browsers sign in once and get a session (a random token in an HttpOnly cookie; the
database keeps only its SHA-256).  API clients send HTTP Basic credentials with each
request.  Failed attempts are counted per client in the database, so the limit holds
across every gunicorn worker and survives a restart.
"""

import hashlib
import hmac
import secrets
import threading
import time

from .passwords import read_hash, verify_password

USER = "admin"
SESSION_COOKIE = "edir_session"
SESSION_SECONDS = 12 * 3600
# At most MAX_FAILURES failed sign-ins per client in WINDOW_SECONDS; then 429 until the oldest expires.
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


class Admin:
    def __init__(self, store, password_file, clock=time.time):
        self.store = store
        self.password_file = password_file
        self.clock = clock
        # A password already proven against the current hash is not run through scrypt again
        # (HTTP Basic sends it with every request). Kept as a keyed digest, in memory only.
        self._key = secrets.token_bytes(32)
        self._proven = {}
        self._lock = threading.Lock()

    def _stored(self):
        return read_hash(self.password_file)

    def configured(self):
        return bool(self._stored())

    def _stamp(self, stored):
        """Ties sessions to the current password: a new password ends every session."""
        return hashlib.sha256(stored.encode("ascii")).hexdigest()[:16]

    def _password_ok(self, password):
        stored = self._stored()
        if not stored:
            return False
        digest = hmac.new(self._key, password.encode("utf-8", "replace"), hashlib.sha256).digest()
        with self._lock:
            if self._proven.get(stored) == digest:
                return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            self._proven = {stored: digest}
        return True

    def retry_after(self, client):
        """Seconds until ``client`` may try again, or 0 when it may try now."""
        now = self.clock()
        failures = self.store.recent_failures(client, now - WINDOW_SECONDS)
        if len(failures) < MAX_FAILURES:
            return 0
        return max(1, int(failures[-MAX_FAILURES] + WINDOW_SECONDS - now) + 1)

    def check(self, client, user, password):
        """True for the administrator's credentials; a failure is counted against ``client``.

        Call ``retry_after`` first: a limited client must not learn whether a guess was right.
        """
        if user == USER and self._password_ok(password):
            self.store.clear_failures(client)
            return True
        self.store.record_failure(client, self.clock(), self.clock() - WINDOW_SECONDS)
        return False

    def new_session(self):
        """A fresh session token (for the cookie) and how long it lasts."""
        token = secrets.token_urlsafe(32)
        expires = self.clock() + SESSION_SECONDS
        self.store.add_session(_digest(token), expires, self._stamp(self._stored()), self.clock())
        return token, SESSION_SECONDS

    def session_valid(self, token):
        if not token:
            return False
        stored = self._stored()
        if not stored:
            return False
        return self.store.session_valid(_digest(token), self.clock(), self._stamp(stored))

    def end_session(self, token):
        if token:
            self.store.delete_session(_digest(token))


def _digest(token):
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
