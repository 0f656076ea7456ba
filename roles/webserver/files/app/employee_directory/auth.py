"""Who may change the directory: the administrator, by password.

Browsers sign in once and get a session (a random token in an HttpOnly cookie; the
database keeps only its SHA-256).  API clients send HTTP Basic credentials with each
request.  Failed attempts are counted per client address in the database, so the limit holds
across every gunicorn worker and survives a restart; behind a load balancer the address is the
client's (nginx takes it from X-Forwarded-For of trusted proxies only), so one client's guesses
do not lock out another.  A far higher total per account bounds guessing from many addresses.
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
# At most MAX_FAILURES failed sign-ins per client in WINDOW_SECONDS, and ACCOUNT_MAX_FAILURES for the account from
# every client together; then 429 until the oldest expires.
MAX_FAILURES = 5
ACCOUNT_MAX_FAILURES = 100
WINDOW_SECONDS = 15 * 60
# The store keeps the account's total under this key beside the clients' addresses (it can never be one).
ACCOUNT_KEY = f"account:{USER}"


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

    def _limits(self, client):
        """(recent failure times, limit) of the client and of the account."""
        since = self.clock() - WINDOW_SECONDS
        return [(self.store.recent_failures(key, since), limit)
                for key, limit in ((client, MAX_FAILURES), (ACCOUNT_KEY, ACCOUNT_MAX_FAILURES))]  # fmt: skip

    def retry_after(self, client):
        """Seconds until ``client`` may try again, or 0 when it may try now."""
        now = self.clock()
        waits = [int(failures[-limit] + WINDOW_SECONDS - now) + 1
                 for failures, limit in self._limits(client) if len(failures) >= limit]  # fmt: skip
        return max([1, *waits]) if waits else 0

    def tries_left(self, client):
        """Failed sign-ins ``client`` may still make before it must wait."""
        return max(0, min(limit - len(failures) for failures, limit in self._limits(client)))

    def check(self, client, user, password):
        """True for the administrator's credentials; a failure is counted against ``client``.

        Call ``retry_after`` first: a limited client must not learn whether a guess was right.
        """
        if user == USER and self._password_ok(password):
            self.store.clear_failures(client)
            return True
        now = self.clock()
        for key in (client, ACCOUNT_KEY):
            self.store.record_failure(key, now, now - WINDOW_SECONDS)
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
