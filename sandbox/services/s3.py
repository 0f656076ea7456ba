"""S3: IAM on the bucket or object a request names; other accounts' buckets refuse this one (sandbox/s3.py)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import unescape

from ..errors import s3_error
from ..iam import request_headers
from ..s3 import s3_bucket_and_key
from .base import Answer, Request, Service

# S3's IAM actions by method and sub-resource (the first query key found; "" is the default).
_S3_BUCKET = {
    "GET": {"acl": "GetBucketAcl", "cors": "GetBucketCORS", "encryption": "GetEncryptionConfiguration",
            "lifecycle": "GetLifecycleConfiguration", "location": "GetBucketLocation", "logging": "GetBucketLogging",
            "notification": "GetBucketNotification", "object-lock": "GetBucketObjectLockConfiguration",
            "ownershipControls": "GetBucketOwnershipControls", "policy": "GetBucketPolicy",
            "policyStatus": "GetBucketPolicyStatus", "publicAccessBlock": "GetBucketPublicAccessBlock",
            "replication": "GetReplicationConfiguration", "requestPayment": "GetBucketRequestPayment",
            "tagging": "GetBucketTagging", "uploads": "ListBucketMultipartUploads",
            "versioning": "GetBucketVersioning", "versions": "ListBucketVersions", "website": "GetBucketWebsite",
            "": "ListBucket"},
    "HEAD": {"": "ListBucket"},
    "PUT": {"acl": "PutBucketAcl", "cors": "PutBucketCORS", "encryption": "PutEncryptionConfiguration",
            "lifecycle": "PutLifecycleConfiguration", "logging": "PutBucketLogging",
            "notification": "PutBucketNotification", "object-lock": "PutBucketObjectLockConfiguration",
            "ownershipControls": "PutBucketOwnershipControls", "policy": "PutBucketPolicy",
            "publicAccessBlock": "PutBucketPublicAccessBlock", "replication": "PutReplicationConfiguration",
            "requestPayment": "PutBucketRequestPayment", "tagging": "PutBucketTagging",
            "versioning": "PutBucketVersioning", "website": "PutBucketWebsite", "": "CreateBucket"},
    "DELETE": {"cors": "PutBucketCORS", "encryption": "PutEncryptionConfiguration",
               "lifecycle": "PutLifecycleConfiguration", "ownershipControls": "PutBucketOwnershipControls",
               "policy": "DeleteBucketPolicy", "publicAccessBlock": "PutBucketPublicAccessBlock",
               "replication": "PutReplicationConfiguration", "tagging": "PutBucketTagging",
               "website": "DeleteBucketWebsite", "": "DeleteBucket"},
    "POST": {"delete": "DeleteObject", "": "PutObject"},
}  # fmt: skip
_S3_OBJECT = {
    "GET": {"acl": "GetObjectAcl", "attributes": "GetObjectAttributes", "legal-hold": "GetObjectLegalHold",
            "retention": "GetObjectRetention", "tagging": "GetObjectTagging", "uploadId": "ListMultipartUploadParts",
            "versionId": "GetObjectVersion", "": "GetObject"},
    "HEAD": {"versionId": "GetObjectVersion", "": "GetObject"},
    "PUT": {"acl": "PutObjectAcl", "legal-hold": "PutObjectLegalHold", "retention": "PutObjectRetention",
            "tagging": "PutObjectTagging", "": "PutObject"},
    "DELETE": {"tagging": "DeleteObjectTagging", "uploadId": "AbortMultipartUpload",
               "versionId": "DeleteObjectVersion", "": "DeleteObject"},
    "POST": {"restore": "RestoreObject", "select": "GetObject", "": "PutObject"},
}  # fmt: skip


def s3_requested(method: str, host: str, path: str, query: str, headers: dict, body: bytes) -> list[tuple[str, str]]:
    """S3 checks the bucket (``arn:aws:s3:::B``) or the object (``arn:aws:s3:::B/K``) a request names."""
    bucket, key = s3_bucket_and_key(host, path)
    if not bucket:
        return [("s3:ListAllMyBuckets", "*")]
    subs = {k for k, _ in parse_qsl(query, keep_blank_values=True)}
    table = (_S3_OBJECT if key else _S3_BUCKET).get(method, {"": "PutObject" if key else "ListBucket"})
    name = next((v for k, v in table.items() if k and k in subs), table[""])
    if not key and name == "DeleteObject":  # DeleteObjects: each key it names
        keys = [unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", body.decode(errors="replace"), re.DOTALL)]
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys] or [("s3:DeleteObject", "*")]
    wanted = [(f"s3:{name}", f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}")]
    source = headers.get("X-Amz-Copy-Source")
    if key and method == "PUT" and source:  # CopyObject / UploadPartCopy also read the source
        src = unquote(source.split("?", 1)[0]).lstrip("/")
        wanted.append(("s3:GetObject", f"arn:aws:s3:::{src}"))
    return wanted


class S3(Service):
    name = "s3"

    def requested(self, req: Request) -> list[tuple[str, str]]:
        env = req.environ
        return s3_requested(req.method, env.get("HTTP_HOST", ""), env.get("PATH_INFO", "/"),
                            env.get("QUERY_STRING", ""), request_headers(env), req.raw)  # fmt: skip

    def answer(self, req: Request) -> Answer:
        if not req.internal:
            refused = self.core.foreign_buckets.refusal(req.environ)
            if refused:
                return refused
        return self.moto(req.environ, req.raw)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return s3_error(code, message, status, req.method if req else "GET")
