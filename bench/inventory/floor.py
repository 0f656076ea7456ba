"""The floor: boto3 paginating DescribeInstances in every region of the benchmark, and nothing else.

    python floor.py us-east-1,eu-west-1 [--parallel]

Uses AWS_ENDPOINT_URL and the usual credential variables. Prints the number of instances seen.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import boto3


def count(client):
    total = 0
    for page in client.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}], PaginationConfig={"PageSize": 1000}
    ):
        total += sum(len(r["Instances"]) for r in page["Reservations"])
    return total


def main():
    regions = sys.argv[1].split(",")
    session = boto3.session.Session()
    clients = [session.client("ec2", region_name=region) for region in regions]
    if "--parallel" in sys.argv:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            total = sum(pool.map(count, clients))
    else:
        total = sum(count(client) for client in clients)
    print(f"{total} instances")


if __name__ == "__main__":
    main()
