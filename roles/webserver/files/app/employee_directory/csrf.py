"""Protection of HTML forms against cross-site request forgery.

A browser gets a random nonce in a SameSite=Strict, HttpOnly cookie; every
form carries HMAC(secret, nonce).  Another site can neither read the cookie
nor compute the token without the server's secret, so a forged POST fails.
"""

import hashlib
import hmac
import os
import secrets
import tempfile

COOKIE = "edir_csrf"
FIELD = "csrf_token"


def load_or_create_secret(path):
    """Read the secret at ``path``, creating it atomically on first use."""
    try:
        with open(path, "rb") as handle:
            secret = handle.read()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".secret-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return secret


class Csrf:
    def __init__(self, secret):
        self._secret = secret

    @staticmethod
    def new_nonce():
        return secrets.token_urlsafe(24)

    def token(self, nonce):
        return hmac.new(self._secret, nonce.encode("ascii", "replace"), hashlib.sha256).hexdigest()

    def valid(self, nonce, token):
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.token(nonce), token)

    def seal(self, text):
        """``text`` with a MAC of this server's secret: only this server can have made it."""
        return text + "." + hmac.new(self._secret, b"seal:" + text.encode("ascii"), hashlib.sha256).hexdigest()

    def unseal(self, sealed):
        """The text ``seal`` was given, or None when ``sealed`` is not one of its answers."""
        text, _dot, _mac = (sealed or "").rpartition(".")
        if text and hmac.compare_digest(self.seal(text), sealed):
            return text
        return None
