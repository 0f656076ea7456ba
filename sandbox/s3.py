"""S3 buckets of other AWS accounts: bucket names are global, and another account's bucket refuses this one.

moto keeps one set of bucket names for every account (a second CreateBucket of a name is ``BucketAlreadyExists``)
but lets any account read and delete any account's bucket. On AWS, a bucket answers another account only where
its bucket policy grants it (the sandbox has no bucket policies), so every request of this account that names
another account's bucket is ``403 AccessDenied`` (a HEAD has no body), except CreateBucket, which S3 answers
``409 BucketAlreadyExists``. Such a bucket is made through the control API (``POST /_sandbox/foreign-buckets``),
in moto's own multi-account support (its ``x-moto-account-id`` header, which the middleware strips from every
client's request, so no client can act as another account).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl

from .errors import s3_error

_IP_HOST = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def s3_bucket_and_key(host: str, path: str) -> tuple[str, str]:
    """Path-style (``/bucket/key``, what clients use with an IP endpoint) or virtual-host style
    (``bucket.localhost``, ``bucket.s3.<region>.amazonaws.com``)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    path = path.lstrip("/")
    if not _IP_HOST.match(name) and (name.endswith(".localhost") or ".s3." in name or ".s3-" in name):
        first = name.split(".", 1)[0]
        if first != "s3":
            return first, path
    bucket, _, key = path.partition("/")
    return bucket, key


class ForeignBuckets:
    """The buckets the sandbox made for other accounts (name -> account ID)."""

    def __init__(self, own_account: str):
        self.own_account = own_account
        self.buckets: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, spec: dict, call_inner) -> dict:
        """Make ``spec["bucket"]`` in account ``spec["account"]`` (region ``spec["region"]``, default us-east-1).
        ``call_inner(environ, body)`` is moto's app. Raises ValueError naming a bad value."""
        name, account = str(spec.get("bucket", "")), str(spec.get("account", ""))
        region = str(spec.get("region") or "us-east-1")
        if not _BUCKET.match(name):
            raise ValueError(f"bucket: {name!r} is not a valid S3 bucket name")
        if not _ACCOUNT.match(account) or account == self.own_account:
            raise ValueError(f"account: {account!r} is not 12 digits other than the sandbox's own account")
        body = b"" if region == "us-east-1" else (
            "<CreateBucketConfiguration><LocationConstraint>"
            f"{region}</LocationConstraint></CreateBucketConfiguration>"
        ).encode()  # fmt: skip
        environ = {
            "REQUEST_METHOD": "PUT",
            "PATH_INFO": f"/{name}",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "HTTP_X_MOTO_ACCOUNT_ID": account,
            # moto routes by the signature's scope; it checks no signature itself.
            "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=sandbox/20260101/{region}/s3/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        status, _headers, answer = call_inner(environ, body)
        if not status.startswith("200"):
            raise ValueError(f"bucket {name}: S3 answered {status}: {answer[:200].decode(errors='replace')}")
        with self.lock:
            self.buckets[name] = account
        return {"bucket": name, "account": account, "region": region}

    def refusal(self, environ: dict) -> tuple[str, list, bytes] | None:
        """The answer AWS gives this account for a request that names another account's bucket, else None."""
        if not self.buckets:
            return None
        bucket, key = s3_bucket_and_key(environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", "/"))
        if bucket not in self.buckets:
            return None
        method = environ.get("REQUEST_METHOD", "GET")
        subresources = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if method == "PUT" and not key and not subresources:
            return s3_error(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users of the "
                "system. Please select a different name and try again.",
                409,
                method,
            )
        return s3_error("AccessDenied", "Access Denied", 403, method)

    def listed(self) -> dict:
        with self.lock:
            return dict(self.buckets)
