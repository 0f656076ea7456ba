"""Who owns an S3 bucket, asked by the flow's caller (run by tasks/bucket_owner.yml on the controller).

    bucket_owner.py BUCKET ACCOUNT_ID REGION

One HeadBucket with the expected owner ACCOUNT_ID (credentials and endpoint from the standard AWS environment, as
the modules take them): S3 answers 200 for a bucket of that account, 404 for a name nobody holds, and 403 for a
bucket of another account (bucket names are global across accounts; amazon.aws's s3_bucket reports that 403 only as
"Failed to determine if bucket exists"). Standard output: ``ours``, ``free`` or ``foreign``; exit status 0. Any other
answer: one line on standard error, exit status 1.
"""

from __future__ import annotations

import os
import sys

import boto3
import botocore.config
import botocore.exceptions


def owner(s3, bucket: str, account: str) -> str:
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return "free"
        if status == 403:
            return "foreign"
        raise
    return "ours"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: bucket_owner.py BUCKET ACCOUNT_ID REGION", file=sys.stderr)
        return 1
    bucket, account, region = argv
    # An endpoint given by address (a local one) cannot serve bucket names as host names.
    local = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = botocore.config.Config(s3={"addressing_style": "path" if local else "auto"}, retries={"mode": "standard"})
    try:
        print(owner(boto3.client("s3", region_name=region, config=config), bucket, account))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"S3 bucket {bucket}: HeadBucket: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
