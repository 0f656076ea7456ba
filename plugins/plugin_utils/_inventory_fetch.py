# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bakery.ec2.instances: DescribeInstances in every region and set of filters, page by page (private).

Not a public API: the leading underscore means names here may change in any release.

The listings (one per region and set of filters) run in a bounded pool of threads. Each page is parsed into
host variables as it arrives (``PageParser``, on botocore's ``before-parse`` hook), and its raw XML is dropped at
once: only the compact host records stay. ``Listing.pages()`` hands them over page by page, each page given up
once handed over, so that the inventory takes the hosts in while the records it has taken are freed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._connection import build_client, build_session
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import split_filters
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_hostvars import (
    HOSTVARS_KEY,
    PageParser,
    instance_hostvars,
    set_region,
)

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

PERMISSION_CODES = frozenset(("AuthFailure", "UnauthorizedOperation", "OptInRequired"))
DEFAULT_REGION = "us-east-1"
PAGE_SIZE = 1000  # DescribeInstances' largest page


def ansible_filters(filters: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``{'tag:Role': 'web'}`` -> ``[{'Name': 'tag:Role', 'Values': ['web']}]``."""
    out = []
    for name, value in (filters or {}).items():
        values = value if isinstance(value, list) else [value]
        out.append({"Name": str(name), "Values": [str(v) for v in values]})
    return out


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an inventory is built (reference counting still frees).

    The host records are millions of small dicts and lists without cycles; every full collection walks all of
    them again, which took more than half the CPU time of a 100,000-instance inventory. Restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def connect(params: dict[str, Any], assume_role_arn: str | None = None) -> tuple[dict[str, Any], Any]:
    """A boto3 session for ``params``; with ``assume_role_arn``, the role's credentials are used instead."""
    session = build_session(params)
    if not assume_role_arn:
        return params, session
    sts = build_client(params, service="sts", region=params.get("region") or DEFAULT_REGION, session=session)
    creds = sts.call("assume_role", RoleArn=assume_role_arn, RoleSessionName="bakery-ec2-inventory")["Credentials"]
    params = dict(
        params,
        profile=None,
        access_key=creds["AccessKeyId"],
        secret_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    return params, build_session(params)


def all_regions(params: dict[str, Any], session: Any) -> list[str]:
    """Every region enabled for the account (DescribeRegions)."""
    client = build_client(params, region=params.get("region") or DEFAULT_REGION, session=session)
    return sorted(r["RegionName"] for r in client.call("describe_regions").get("Regions", ()))


class Skipped:
    """A region skipped for lack of permissions (strict_permissions=false)."""

    def __init__(self, region: str, error: AwsError) -> None:
        self.region = region
        self.error = error


class Listing:
    """The instances of one inventory source: every region, with each set of filters, in a bounded pool.

    ``queries`` are the sets of filters whose instances are wanted, ``excludes`` those whose are left out
    (DescribeInstances filters, see ``ansible_filters``). ``skipped`` names the regions skipped for lack of
    permissions once ``pages()`` has run.
    """

    def __init__(
        self,
        params: dict[str, Any],
        session: Any,
        regions: Iterable[str],
        queries: Iterable[list[dict[str, Any]]],
        excludes: Iterable[list[dict[str, Any]]] = (),
        max_concurrency: int = 8,
        strict_permissions: bool = True,
    ) -> None:
        # A filter of more than 200 values (EC2's limit) is asked for in parts; their instances together are the same.
        self.queries = [part for filters in queries for part in split_filters(filters)]
        self.excludes = [part for filters in excludes for part in split_filters(filters)]
        self.max_concurrency = max_concurrency
        self.strict_permissions = strict_permissions
        self.skipped: list[Skipped] = []
        # A boto3 session is not thread-safe, its clients are: build them here, use them in the workers.
        self.clients = {region: build_client(params, region=region, session=session) for region in regions}
        self.strings: dict[str, str] = {}  # equal short strings of every page and region are one object
        parser = None
        for client in self.clients.values():
            parser = parser or PageParser(client.client.meta.service_model, self.strings)
            client.client.meta.events.register("before-parse.ec2.DescribeInstances", parser.hook)

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """Host records (lists of host variables) page by page: regions in order, each instance once.

        Every listing has answered in full before the first page is handed over: a region that fails half-way
        must not leave half an inventory behind. Each page is given up as it is handed over.
        """
        regions = list(self.clients)
        jobs = [(region, filters, False) for region in regions for filters in self.queries]
        jobs += [(region, filters, True) for region in regions for filters in self.excludes]
        if not jobs:
            return
        workers = max(1, min(self.max_concurrency, len(jobs)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._list, self.clients[region], filters) for region, filters, _ex in jobs]
            results = [future.result() for future in futures]

        excluded = set()
        for index, (_region, _filters, exclude) in enumerate(jobs):
            found = results[index]
            if isinstance(found, Skipped):
                self.skipped.append(found)
                results[index] = None
            elif exclude:
                excluded.update(hostvars["instance_id"] for page in found for hostvars in page)
                results[index] = None
        seen = excluded  # an excluded instance is as good as added
        for index, found in enumerate(results):
            results[index] = None
            for page_index, page in enumerate(found or ()):
                found[page_index] = None
                fresh = []
                for hostvars in page:
                    iid = hostvars["instance_id"]
                    if iid not in seen:
                        seen.add(iid)
                        fresh.append(hostvars)
                del page
                if fresh:
                    yield fresh
                del fresh

    def _list(self, client: AwsClient, filters: list[dict[str, Any]]) -> list[list[dict[str, Any]]] | Skipped:
        """The pages of host variables of the instances matching ``filters`` in one region, or why it is skipped."""
        pages = []
        try:
            kwargs = {"Filters": filters, "MaxResults": PAGE_SIZE}
            while True:
                response = client.call("describe_instances", **kwargs)
                page = response.get(HOSTVARS_KEY, [])
                for hostvars in page:
                    set_region(hostvars, client.region)
                for reservation in response.get("Reservations", ()):  # when the hook did not parse it
                    for instance in reservation.get("Instances", ()):
                        page.append(instance_hostvars(instance, reservation, self.strings, client.region))
                pages.append(page)
                token = response.get("NextToken")
                if not token:
                    return pages
                kwargs["NextToken"] = token
        except AwsError as err:
            if err.code not in PERMISSION_CODES:
                raise
            if not self.strict_permissions:
                return Skipped(client.region, err)  # the plugin warns
            raise AwsError(
                err.operation,
                err.code,
                f"region {client.region} is denied or not opted in: {err.message}; "
                "set strict_permissions: false to skip such regions",
                err.status,
            ) from None
