"""Answers moto 5.2.5 leaves out and AWS always gives, which well-kept clients need (the flow's modules).

Filled where moto builds its answer, once per process: by the sandbox, and by the moto server of the integration
tests (tests/integration/conftest.py), so both behave as AWS does for these fields.
"""

from __future__ import annotations

import uuid

# A fixed namespace: the same table ARN always gets the same ID, as a table keeps its ID on AWS.
_TABLE_IDS = uuid.UUID("6f1d4c2e-7b1a-4e58-9a3c-5d2b8e0f7a41")


def apply() -> None:
    """DynamoDB DescribeTable/CreateTable/DeleteTable answers carry TableId (community.aws.dynamodb_table reads it)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.describe, "_bakery_gaps", False):
        return
    describe = Table.describe

    def with_table_id(self, base_key: str = "TableDescription"):
        result = describe(self, base_key)
        result[base_key].setdefault("TableId", str(uuid.uuid5(_TABLE_IDS, self.table_arn)))
        return result

    with_table_id._bakery_gaps = True
    Table.describe = with_table_id
