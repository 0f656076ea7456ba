"""The inventory's listing: regions in a bounded pool, XML pages parsed as they arrive, handed over page by page.

The clients are real botocore clients whose HTTP layer is replaced by ``Endpoint`` (a ``before-send`` handler
that answers from the bench stub's XML pages), so the pages go through botocore, the hook and the parser as
they do against EC2. No network is used.
"""

from __future__ import annotations

import gc
import tracemalloc
from urllib.parse import parse_qs

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.plugin_utils import _inventory_fetch
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_fetch import (
    Listing,
    ansible_filters,
    paused_gc,
)
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_hostvars import PageParser
from ansible_collections.bakery.ec2.tests.unit.plugins.ec2_data import MODEL, load_stub
from botocore.awsrequest import AWSResponse

PARAMS = {"access_key": "AKIATEST", "secret_key": "secret", "region": "us-east-1"}
RUNNING = [ansible_filters({"instance-state-name": "running"})[0]]


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self):
        yield self.data


class Endpoint:
    """DescribeInstances answered from pre-rendered pages per region (``NextToken`` = ``<region>.<page>``).

    ``filtered`` maps a filter value to the pages answered when a request carries it; ``fail`` maps
    ``(region, page index)`` to an error code answered instead of that page.
    """

    def __init__(self, pages, filtered=None, fail=None):
        self.pages = pages
        self.filtered = filtered or {}
        self.fail = fail or {}
        self.calls = []

    def attach(self, listing):
        for region, client in listing.clients.items():
            client.client.meta.events.register("before-send.ec2.DescribeInstances", self._answer(region))

    def _answer(self, region):
        def before_send(request, **_kwargs):
            form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
            token = form.get("NextToken", [""])[0]
            index = int(token.rsplit(".", 1)[1]) if token else 0
            values = {v[0] for k, v in form.items() if k.startswith("Filter.") and ".Value." in k}
            self.calls.append((region, index, tuple(sorted(values))))
            if (region, index) in self.fail:
                code = self.fail[(region, index)]
                body = f"<Response><Errors><Error><Code>{code}</Code><Message>no</Message></Error></Errors></Response>"
                return AWSResponse(request.url, 400, {}, _Body(body.encode()))
            pages = next((self.filtered[v] for v in values if v in self.filtered), self.pages)
            page = bytes(bytearray(pages[region][index]))  # a fresh copy, as if it had come off the wire
            return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, _Body(page))

        return before_send


@pytest.fixture(scope="module")
def stub():
    return load_stub()


def listing(endpoint, regions, queries=(RUNNING,), excludes=(), **kwargs):
    session = _inventory_fetch.build_session(PARAMS)
    built = Listing(PARAMS, session, regions, queries, excludes, **kwargs)
    endpoint.attach(built)
    return built


def ids(pages):
    return [hostvars["instance_id"] for page in pages for hostvars in page]


def test_pages_come_in_region_order_each_with_its_region(stub):
    regions = ["eu-west-1", "us-east-1", "ap-south-1"]
    pages = stub.build_pages(regions, 900, page_size=100)
    endpoint = Endpoint(pages)
    got = list(listing(endpoint, regions, max_concurrency=2).pages())
    assert [len(page) for page in got] == [100] * 9  # page by page, as EC2 answered them
    expected = [h["instance_id"] for r in regions for body in pages[r] for h in stub_hosts(stub, body)]
    assert ids(got) == expected
    for region, page in zip([r for r in regions for _p in range(3)], got, strict=True):
        assert {h["placement"]["region"] for h in page} == {region}
    assert len(endpoint.calls) == 9


def stub_hosts(stub, body):
    return PageParser(MODEL, {}).parse(body)[0]


def test_include_filters_add_each_instance_once_and_exclude_filters_remove(stub):
    pages = stub.build_pages(["eu-west-1"], 30, page_size=10)
    shared = stub.build_pages(["eu-west-1"], 40, page_size=40)  # the same 30 instances and 10 more
    skip = stub.build_pages(["eu-west-1"], 5, page_size=5)  # the first 5 instances
    endpoint = Endpoint(pages, filtered={"yes": shared, "skip": skip})
    queries = [RUNNING, ansible_filters({"tag:Shared": "yes"})]
    excludes = [ansible_filters({"tag:Skip": "skip"})]
    got = ids(listing(endpoint, ["eu-west-1"], queries, excludes).pages())
    every = ids([stub_hosts(stub, shared["eu-west-1"][0])])
    assert got == every[5:]  # in the order first found, without duplicates, without the excluded
    assert sorted(call[2] for call in endpoint.calls) == [("running",)] * 3 + [("skip",), ("yes",)]


def test_a_filter_of_more_than_200_values_is_asked_for_in_parts(stub):
    pages = stub.build_pages(["eu-west-1"], 10, page_size=10)
    skip = stub.build_pages(["eu-west-1"], 5, page_size=5)  # the first 5 instances
    wanted = [f"i-{n:017x}" for n in range(250)]
    skipped = [f"i-{n:017x}" for n in range(1000, 1201)]
    # Both parts of the query match the same 10 instances, both parts of the exclusion the first 5.
    endpoint = Endpoint(pages, filtered={skipped[0]: skip, skipped[200]: skip})
    queries = [ansible_filters({"instance-id": wanted, "instance-state-name": "running"})]
    got = ids(listing(endpoint, ["eu-west-1"], queries, [ansible_filters({"instance-id": skipped})]).pages())
    assert got == ids([stub_hosts(stub, pages["eu-west-1"][0])])[5:]  # each once, the excluded left out
    sent = sorted((set(call[2]) for call in endpoint.calls), key=len)
    assert [len(values) for values in sent] == [1, 51, 200, 201]  # 250 IDs + "running"; 201 IDs
    assert set().union(*sent) == set(wanted) | set(skipped) | {"running"}


def test_a_region_failing_half_way_fails_before_any_page_is_handed_over(stub):
    regions = ["eu-west-1", "us-east-1"]
    endpoint = Endpoint(stub.build_pages(regions, 400, page_size=100), fail={("us-east-1", 1): "InvalidParameter"})
    pages = listing(endpoint, regions).pages()
    with pytest.raises(AwsError, match="InvalidParameter"):
        next(pages)


def test_denied_region_is_skipped_or_named(stub):
    regions = ["eu-west-1", "us-east-1"]
    pages = stub.build_pages(regions, 20, page_size=10)
    endpoint = Endpoint(pages, fail={("eu-west-1", 0): "UnauthorizedOperation"})
    lenient = listing(endpoint, regions, strict_permissions=False)
    assert len(ids(lenient.pages())) == 10
    assert [s.region for s in lenient.skipped] == ["eu-west-1"]
    with pytest.raises(AwsError, match=r"region eu-west-1 is denied .* set strict_permissions: false"):
        list(listing(Endpoint(pages, fail={("eu-west-1", 0): "AuthFailure"}), regions).pages())


def test_raw_pages_are_not_kept_and_pages_handed_over_are_let_go(stub):
    """Memory bound: no raw XML page outlives its parsing, and the listing keeps no page it has handed over."""
    regions = ["eu-west-1", "us-east-1"]
    pages = stub.build_pages(regions, 1200, page_size=100)
    page_bytes = len(pages["eu-west-1"][0])
    running = listing(Endpoint(pages), regions, max_concurrency=2)
    tracemalloc.start(1)
    try:
        stream = running.pages()
        page = next(stream)  # every listing has answered: all the records exist now
        raw = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, __file__)])
        at_start = records_size()
        for _count in range(5):  # half of the 12 pages taken in, then dropped, as the inventory does
            page = next(stream)
        del page
        half_way = records_size()
        rest = sum(1 for _page in stream)
        del running, stream
        at_end = records_size()
    finally:
        tracemalloc.stop()
    # The raw pages (12 copies made by Endpoint, each of about page_bytes) are gone once parsed.
    assert sum(stat.size for stat in raw.statistics("filename")) < page_bytes
    assert rest == 6
    assert at_start > 1_000_000
    # Half the records are let go half-way (what stays is one entry per distinct short string and timestamp).
    assert half_way < at_start * 2 / 3
    assert at_end < at_start / 50


def records_size():
    """Bytes now held by blocks that the page parser allocated: the host records."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*_inventory_hostvars.py")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_paused_gc_pauses_and_restores():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_ansible_filters():
    assert ansible_filters({"tag:Role": "web", "instance-state-name": ["running", "stopped"]}) == [
        {"Name": "tag:Role", "Values": ["web"]},
        {"Name": "instance-state-name", "Values": ["running", "stopped"]},
    ]
    assert ansible_filters(None) == []
