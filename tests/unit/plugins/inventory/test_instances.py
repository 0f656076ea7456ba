"""bakery.ec2.instances: hostnames, constructed fast paths, cache, permissions, through ansible-core's loader."""

from __future__ import annotations

import datetime
import json

import boto3
import pytest
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.plugins.loader import inventory_loader
from ansible.template import trust_as_template
from ansible_collections.bakery.ec2.plugins.inventory import instances
from ansible_collections.bakery.ec2.plugins.module_utils import _client
from ansible_collections.bakery.ec2.plugins.plugin_utils import _inventory_fetch
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_hostvars import instance_hostvars
from ansible_collections.bakery.ec2.tests.unit.plugins.ec2_data import instance
from botocore.stub import Stubber

# --- hostnames ---------------------------------------------------------------------------------


def test_hostname_preferences_first_non_empty_wins_with_prefixes():
    hv = instance_hostvars(instance(tags={"Name": "web-1", "Team": ""}))
    prefs = instances.parse_hostnames(
        ["dns-name", {"name": "tag:Team", "prefix": "t"}, {"name": "tag:Name", "prefix": "eu", "separator": "-"}]
    )
    assert instances.hostname_for(hv, prefs) == "eu-web-1"
    assert instances.hostname_for(hv, instances.parse_hostnames([{"name": "private-ip-address", "prefix": "x"}])) == (
        "x_10.0.0.5"
    )
    assert instances.hostname_for(hv, instances.parse_hostnames(["ip-address", "instance-id"])) == hv["instance_id"]
    assert instances.hostname_for(hv, instances.parse_hostnames(["ip-address", "tag:Missing"])) is None


@pytest.mark.parametrize(
    ("prefs", "message"),
    [
        (["public-ip"], "'public-ip' is not one of"),
        ([{"prefix": "a"}], "must be a name or a dictionary with a name"),
        ([{"name": "instance-id", "sep": "-"}], "unknown key(s) sep"),
    ],
)
def test_bad_hostname_preference_is_one_line_naming_it(prefs, message):
    with pytest.raises(AnsibleError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        instances.parse_hostnames(prefs)
    assert "\n" not in str(caught.value)


# --- the plugin, through ansible-core's own loader -------------------------------------------------


@pytest.fixture
def plugin_loader():
    """The collection is loaded by ansible's collection loader (tests/unit/conftest.py)."""


@pytest.fixture
def stubs(monkeypatch):
    """Stubbed EC2 clients per region that the plugin builds; ``calls`` counts clients built."""
    clients = {}
    built = []

    def client_for(region):
        if region not in clients:
            client = boto3.client("ec2", region_name=region, aws_access_key_id="AKIATEST", aws_secret_access_key="s")
            stubber = Stubber(client)
            stubber.activate()
            clients[region] = (_client.AwsClient(client), stubber)
        return clients[region]

    def fake_build_client(params, service="ec2", region=None, max_attempts=10, session=None):
        if service == "sts":
            return sts_client(params)
        built.append(region)
        params_seen.append(params)
        return client_for(region)[0]

    def sts_client(params):
        client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="AKIATEST", aws_secret_access_key="s")
        stubber = Stubber(client)
        stubber.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": "ASIAASSUMED000000000",
                    "SecretAccessKey": "assumed-secret",
                    "SessionToken": "assumed-token",
                    "Expiration": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
                }
            },
            {"RoleArn": "arn:aws:iam::210987654321:role/reader", "RoleSessionName": "bakery-ec2-inventory"},
        )
        stubber.activate()
        clients["sts"] = (None, stubber)
        return _client.AwsClient(client)

    params_seen = []

    monkeypatch.setattr(_inventory_fetch, "build_client", fake_build_client)
    monkeypatch.setattr(_inventory_fetch, "build_session", lambda params: None)
    yield lambda region: client_for(region)[1], built, params_seen
    for _built, stubber in clients.values():
        stubber.assert_no_pending_responses()


def page(*insts, token=None):
    response = {
        "Reservations": [{"ReservationId": "r-0123456789abcdef0", "OwnerId": "123456789012", "Instances": list(insts)}]
    }
    if token:
        response["NextToken"] = token
    return response


def run_plugin(tmp_path, config, cache=True):
    path = tmp_path / "test.instances.yml"
    path.write_text(json.dumps({"plugin": "bakery.ec2.instances", **config}))
    inventory = InventoryData()
    plugin = inventory_loader.get("bakery.ec2.instances")
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    if config.get("cache"):
        plugin.update_cache_if_changed()  # as ansible-core's inventory manager does after parse()
    return inventory, plugin


def cached_config(tmp_path, **options):
    """A configuration of eu-west-1 with a JSON file cache in ``tmp_path/cache``."""
    return {
        "regions": ["eu-west-1"],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
        **options,
    }


def groups_of(inventory):
    return {
        name: sorted(h.name for h in group.get_hosts())
        for name, group in inventory.groups.items()
        if name not in ("all", "ungrouped")
    }


def test_two_regions_pages_filters_and_groups(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    running = [{"Name": "instance-state-name", "Values": ["running"]}]
    stub("eu-west-1").add_response(
        "describe_instances",
        page(instance("i-00000000000000001", {"Role": "web"}), token="t2"),
        {"Filters": running, "MaxResults": 1000},
    )
    stub("eu-west-1").add_response(
        "describe_instances",
        page(instance("i-00000000000000002", {"Role": "db"}, InstanceType="m6i.large")),
        {"Filters": running, "MaxResults": 1000, "NextToken": "t2"},
    )
    stub("us-east-1").add_response(
        "describe_instances",
        page(instance("i-00000000000000003", {"Role": "web"}, Placement={"AvailabilityZone": "us-east-1a"})),
        {"Filters": running, "MaxResults": 1000},
    )
    inventory, _plugin = run_plugin(
        tmp_path,
        {
            "regions": ["eu-west-1", "us-east-1"],
            "keyed_groups": [{"key": "ec2_tags.Role", "prefix": "role"}, {"key": "placement.region", "prefix": "in"}],
            "groups": {"big": "instance_type.startswith('m6')"},
            "compose": {"ansible_user": "'admin'"},
        },
    )
    assert groups_of(inventory) == {
        "role_web": ["i-00000000000000001", "i-00000000000000003"],
        "role_db": ["i-00000000000000002"],
        "in_eu_west_1": ["i-00000000000000001", "i-00000000000000002"],
        "in_us_east_1": ["i-00000000000000003"],
        "big": ["i-00000000000000002"],
    }
    host = inventory.get_host("i-00000000000000002")
    assert host.vars["ansible_host"] == "10.0.0.5"
    assert host.vars["ansible_user"] == "admin"
    assert host.vars["ec2_tags"] == {"Role": "db"}


def test_include_and_exclude_filters(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    ec2 = stub("eu-west-1")
    # Jobs run in parallel, so each response must fit whichever request comes first.
    ec2.add_response("describe_instances", page(instance("i-00000000000000001"), instance("i-00000000000000002")))
    ec2.add_response("describe_instances", page(instance("i-00000000000000002"), instance("i-00000000000000003")))
    ec2.add_response("describe_instances", page())
    inventory, _plugin = run_plugin(
        tmp_path,
        {
            "regions": ["eu-west-1"],
            "max_concurrency": 1,
            "include_filters": [{"tag:Shared": "yes"}],
            "exclude_filters": [{"tag:Skip": ["yes"]}],
        },
    )
    assert sorted(inventory.hosts) == ["i-00000000000000001", "i-00000000000000002", "i-00000000000000003"]


def test_cache_hit_makes_no_call_and_is_written_only_when_refreshed(plugin_loader, stubs, tmp_path):
    stub, built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001", {"Role": "web"})))
    config = cached_config(tmp_path, keyed_groups=[{"key": "ec2_tags.Role"}])
    # --flush-cache (cache=False): fetched and written.
    inventory, _plugin = run_plugin(tmp_path, config, cache=False)
    assert sorted(inventory.hosts) == ["i-00000000000000001"]
    assert built == ["eu-west-1"]
    written = list((tmp_path / "cache").iterdir())
    assert len(written) == 1
    mtime = written[0].stat().st_mtime_ns
    # A cache hit: same inventory, no client built, no call made (no stub response is left to give).
    inventory, _plugin = run_plugin(tmp_path, config, cache=True)
    assert built == ["eu-west-1"]
    assert sorted(inventory.hosts) == ["i-00000000000000001"]
    assert groups_of(inventory) == {"_web": ["i-00000000000000001"]}
    assert written[0].stat().st_mtime_ns == mtime


def test_the_regions_listed_are_a_variable_of_all(plugin_loader, stubs, tmp_path):
    """``bakery_ec2_regions``: what a playbook given only a synced copy of the inventory can check its region with."""
    stub, _built, _params = stubs
    stub("us-east-1").add_response("describe_instances", page())
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    inventory, _plugin = run_plugin(tmp_path, {"regions": ["us-east-1", "eu-west-1"]})
    assert inventory.groups["all"].get_vars()["bakery_ec2_regions"] == ["eu-west-1", "us-east-1"]
    # A second configuration of the same inventory adds its regions to the first one's.
    stub("ap-south-1").add_response("describe_instances", page())
    path = tmp_path / "second.instances.yml"
    path.write_text(json.dumps({"plugin": "bakery.ec2.instances", "regions": ["ap-south-1", "eu-west-1"]}))
    stub("eu-west-1").add_response("describe_instances", page())
    inventory_loader.get("bakery.ec2.instances").parse(inventory, DataLoader(), str(path), cache=True)
    assert inventory.groups["all"].get_vars()["bakery_ec2_regions"] == ["ap-south-1", "eu-west-1", "us-east-1"]


def test_a_cache_hit_names_the_configured_regions(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    config = cached_config(tmp_path)
    run_plugin(tmp_path, config, cache=False)
    inventory, _plugin = run_plugin(tmp_path, config, cache=True)
    assert inventory.groups["all"].get_vars()["bakery_ec2_regions"] == ["eu-west-1"]


def test_cache_miss_fetches_and_writes(plugin_loader, stubs, tmp_path):
    stub, built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    config = cached_config(tmp_path)
    run_plugin(tmp_path, config)
    assert built == ["eu-west-1"]
    assert len(list((tmp_path / "cache").iterdir())) == 1


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AuthFailure"])
def test_strict_permissions(plugin_loader, stubs, tmp_path, code, capsys):
    stub, _built, _params = stubs
    config = {"regions": ["eu-west-1", "us-east-1"], "strict_permissions": False}
    stub("eu-west-1").add_client_error("describe_instances", service_error_code=code, service_message="no")
    stub("us-east-1").add_response("describe_instances", page(instance("i-00000000000000003")))
    inventory, _plugin = run_plugin(tmp_path, config)
    assert sorted(inventory.hosts) == ["i-00000000000000003"]
    assert f"skipping region eu-west-1 (strict_permissions: false): DescribeInstances: {code}: no" in " ".join(
        capsys.readouterr().err.split()
    )
    # A skipped region is not one the inventory lists.
    assert inventory.groups["all"].get_vars()["bakery_ec2_regions"] == ["us-east-1"]

    stub("eu-west-1").add_client_error("describe_instances", service_error_code=code, service_message="not allowed")
    stub("us-east-1").add_response("describe_instances", page(instance("i-00000000000000003")))
    with pytest.raises(AnsibleError) as caught:
        run_plugin(tmp_path, dict(config, strict_permissions=True))
    # One line naming the region and the option that skips it.
    assert str(caught.value) == (
        f"bakery.ec2.instances: DescribeInstances: {code}: region eu-west-1 is denied or not opted in: not allowed; "
        "set strict_permissions: false to skip such regions"
    )


def test_opt_in_required_region_names_it_and_the_option(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    stub("af-south-1").add_client_error(
        "describe_instances", service_error_code="OptInRequired", service_message="You are not subscribed"
    )
    with pytest.raises(AnsibleError) as caught:
        run_plugin(tmp_path, {"regions": ["af-south-1"]})
    assert "\n" not in str(caught.value)
    assert "region af-south-1 is denied or not opted in" in str(caught.value)
    assert "strict_permissions: false" in str(caught.value)


def test_region_is_the_region_queried_not_the_zone_name_cut(plugin_loader, stubs, tmp_path):
    """A Local Zone (us-west-2-lax-1a) or Wavelength zone name does not end in a letter after the region."""
    stub, _built, _params = stubs
    local = instance("i-00000000000000001")
    local["Placement"] = {"AvailabilityZone": "us-west-2-lax-1a", "Tenancy": "default"}
    wavelength = instance("i-00000000000000002")
    wavelength["Placement"] = {"AvailabilityZone": "us-west-2-wl1-las-wlz-1", "Tenancy": "default"}
    stub("us-west-2").add_response("describe_instances", page(local, wavelength))
    inventory, _plugin = run_plugin(
        tmp_path, {"regions": ["us-west-2"], "keyed_groups": [{"key": "placement.region", "prefix": "in"}]}
    )
    for name in ("i-00000000000000001", "i-00000000000000002"):
        assert inventory.hosts[name].vars["placement"]["region"] == "us-west-2"
    assert sorted(h.name for h in inventory.groups["in_us_west_2"].get_hosts()) == [
        "i-00000000000000001",
        "i-00000000000000002",
    ]


def test_empty_regions_use_describe_regions(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    stub("us-east-1").add_response(
        "describe_regions", {"Regions": [{"RegionName": "eu-west-1"}, {"RegionName": "ap-south-1"}]}
    )
    stub("ap-south-1").add_response("describe_instances", page())
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    inventory, _plugin = run_plugin(tmp_path, {"regions": []})
    assert sorted(inventory.hosts) == ["i-00000000000000001"]


# --- constructed: the fast path gives exactly what ansible-core's Constructable gives --------------


class Reference(BaseInventoryPlugin, Constructable):
    """ansible-core's own helpers, called as amazon.aws's aws_ec2 calls them."""

    NAME = "reference"

    def __init__(self, options):
        super().__init__()
        self._options = options
        self._vars = {}

    def get_option(self, option, hostvars=None):
        return self._options[option]


def reference_inventory(hosts, options):
    ref = Reference(options)
    ref.inventory = InventoryData()
    ref.loader = DataLoader()
    for name, hv in hosts:
        ref.inventory.add_host(name)
        for key, value in hv.items():
            ref.inventory.set_variable(name, key, value)
        ref._set_composite_vars(options["compose"], hv, name, strict=options["strict"])
        ref._add_host_to_composed_groups(options["groups"], hv, name, strict=options["strict"])
        ref._add_host_to_keyed_groups(options["keyed_groups"], hv, name, strict=options["strict"])
    return ref.inventory


def our_inventory(hosts, options):
    ours = instances.InventoryModule()
    ours._options = dict(options)
    ours.get_option = lambda option, hostvars=None: ours._options[option]
    ours.inventory = InventoryData()
    ours.loader = DataLoader()
    ours._vars = {}
    ours._prepare_constructed()
    for name, hv in hosts:
        ours.inventory.add_host(name)
        host = ours.inventory.hosts[name]
        host.vars.update(hv)
        ours._construct(name, host, hv, options["strict"])
    return ours.inventory


def outcome(build, hosts, options):
    try:
        inventory = build(hosts, options)
    except Exception as err:
        return ("error", type(err).__name__, str(err))
    return (
        "ok",
        groups_of(inventory),
        {g.name: sorted(c.name for c in g.child_groups) for g in inventory.groups.values()},
        {name: h.vars for name, h in inventory.hosts.items()},
    )


EXPRESSIONS = [
    "ec2_tags.Role",
    "ec2_tags.Missing",
    "instance_type",
    " placement.availability_zone ",
    "placement.region",
    "placement.missing.deeper",
    "state.name",
    "state.code",
    "ec2_tags",
    "security_groups",
    "public_ip_address",  # missing on some hosts
    "nothing_like_this",
    "ec2_tags.Empty",
    "ec2_tags.items",  # a dict method, not the tag: Jinja's business
    "ec2_tags.Template",  # untrusted data that looks like a template
    "instance_type.upper",
    "instance_id.x",
    "ebs_optimized",
    "inventory_hostname",
    "group_names",
    "range",
    "true",
    "ec2_tags['Role']",
    "instance_type ~ '-' ~ ec2_tags.Role",
    "ec2_tags.Role | default('none')",
    "security_groups | map(attribute='group_name') | list",
]


def sample_hosts():
    hosts = []
    for idx, (role, extra) in enumerate(
        [
            ("web", {"PublicIpAddress": "198.18.0.1"}),
            ("db", {}),
            ("", {"EbsOptimized": True}),
            (None, {}),
        ]
    ):
        tags = {"Env": "prod", "Empty": "", "Template": "{{ lookup('pipe', 'id') }}", "items": "x"}
        if role is not None:
            tags["Role"] = role
        hv = instance_hostvars(instance(f"i-0000000000000000{idx}", tags, **extra))
        hosts.append((hv["instance_id"], hv))
    return hosts


def options_for(**kw):
    options = {
        "compose": {},
        "groups": {},
        "keyed_groups": [],
        "strict": False,
        "use_extra_vars": False,
        "leading_separator": True,
    }
    options.update(kw)
    return options


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_keyed_groups_and_compose_equal_jinja(expression, strict):
    hosts = sample_hosts()
    expr = trust_as_template(expression)
    for options in (
        options_for(keyed_groups=[{"key": expr, "prefix": "k"}], strict=strict),
        options_for(keyed_groups=[{"key": expr, "default_value": "none"}], strict=strict),
        options_for(keyed_groups=[{"key": expr, "trailing_separator": False, "parent_group": "p"}], strict=strict),
        options_for(compose={"composed": expr, "again": trust_as_template("ec2_tags.Env")}, strict=strict),
        options_for(
            compose={"ansible_host": expr},
            groups={"web": trust_as_template("ec2_tags.Role | default('') == 'web'"), "all_of_them": True},
            keyed_groups=[{"key": trust_as_template("ansible_host"), "prefix": "h"}],
            strict=strict,
        ),
    ):
        theirs = outcome(reference_inventory, hosts, options)
        ours = outcome(our_inventory, hosts, options)
        assert ours == theirs, options


def test_leading_separator_and_untrusted_expression_equal_jinja():
    hosts = sample_hosts()
    for options in (
        options_for(keyed_groups=[{"key": trust_as_template("instance_type")}], leading_separator=False),
        options_for(keyed_groups=[{"key": "instance_type"}], strict=True),  # untrusted: Jinja refuses it
    ):
        assert outcome(our_inventory, hosts, options) == outcome(reference_inventory, hosts, options)


def test_plain_path_recognition():
    assert instances.plain_path(trust_as_template("ec2_tags.Role")) == ("ec2_tags", "Role")
    assert instances.plain_path(trust_as_template(" a.b.c ")) == ("a", "b", "c")
    assert instances.plain_path("ec2_tags.Role") is None  # untrusted
    for expr in ("a | b", "a['b']", "a.items", "true", "group_names", "a.1", "a ~ b"):
        assert instances.plain_path(trust_as_template(expr)) is None, expr
    assert instances.plain_path(trust_as_template("range"), frozenset({"range"})) is None


def test_plain_paths_do_not_render_jinja(monkeypatch):
    hosts = sample_hosts()
    calls = []
    original = instances.InventoryModule._evaluate

    def spy(self, expression, variables, full_variables, strict):
        calls.append(expression)
        return original(self, expression, variables, full_variables, strict)

    monkeypatch.setattr(instances.InventoryModule, "_evaluate", spy)
    from ansible.template import Templar

    rendered = []
    monkeypatch.setattr(Templar, "evaluate_expression", lambda self, e, **kw: rendered.append(e))
    options = options_for(
        keyed_groups=[
            {"key": trust_as_template("ec2_tags.Role")},
            {"key": trust_as_template("placement.availability_zone")},
            {"key": trust_as_template("public_ip_address")},
        ]
    )
    our_inventory(hosts, options)
    assert len(calls) == 12
    assert rendered == []


@pytest.mark.parametrize("option", ["assume_role_arn", "iam_role_arn"])  # iam_role_arn: amazon.aws's name
def test_assume_role_credentials_are_used_for_ec2(plugin_loader, stubs, tmp_path, option):
    stub, _built, params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    run_plugin(tmp_path, {"regions": ["eu-west-1"], option: "arn:aws:iam::210987654321:role/reader"})
    assert params[0]["access_key"] == "ASIAASSUMED000000000"
    assert params[0]["secret_key"] == "assumed-secret"
    assert params[0]["session_token"] == "assumed-token"


# --- amazon.aws option names: hostvars_prefix/suffix, allow_duplicated_hosts ---------------------------


def test_hostvars_prefix_and_suffix_rename_the_aws_variables_only(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    stub("eu-west-1").add_response(
        "describe_instances", page(instance("i-00000000000000001", {"Name": "web-1", "Role": "web"}))
    )
    inventory, _plugin = run_plugin(
        tmp_path,
        {
            "regions": ["eu-west-1"],
            "hostnames": ["tag:Name"],
            "hostvars_prefix": "aws_",
            "hostvars_suffix": "_ec2",
            "keyed_groups": [{"key": "aws_ec2_tags_ec2.Role", "prefix": "role"}],
            "groups": {"small": "aws_instance_type_ec2 == 't3.micro'"},
            "compose": {"zone": "aws_placement_ec2.availability_zone"},
        },
    )
    host = inventory.get_host("web-1")
    fields = instance_hostvars(instance("i-00000000000000001", {"Name": "web-1", "Role": "web"}), {})
    not_from_aws = ("ansible_host", "zone", "inventory_file", "inventory_dir")  # the last two: ansible-core's
    aws_vars = {key: value for key, value in host.vars.items() if key not in not_from_aws}
    assert set(aws_vars) == {f"aws_{name}_ec2" for name in fields} | {"aws_owner_id_ec2", "aws_reservation_id_ec2"}
    assert host.vars["aws_instance_id_ec2"] == "i-00000000000000001"
    assert host.vars["aws_ec2_tags_ec2"] == {"Name": "web-1", "Role": "web"}
    assert "instance_id" not in host.vars and "ec2_tags" not in host.vars
    # Not from AWS: not renamed. ansible_host and hostnames still come from the instance's fields.
    assert host.vars["ansible_host"] == "10.0.0.5"
    assert host.vars["zone"] == "eu-west-1b"
    assert groups_of(inventory) == {"role_web": ["web-1"], "small": ["web-1"]}


def test_hostvars_prefix_alone_and_suffix_alone(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    inventory, _plugin = run_plugin(tmp_path, {"regions": ["eu-west-1"], "hostvars_prefix": "aws_"})
    assert inventory.get_host("i-00000000000000001").vars["aws_vpc_id"] == "vpc-0123456789abcdef0"
    inventory, _plugin = run_plugin(tmp_path, {"regions": ["eu-west-1"], "hostvars_suffix": "_ec2"})
    assert inventory.get_host("i-00000000000000001").vars["vpc_id_ec2"] == "vpc-0123456789abcdef0"


def test_hostvars_prefix_applies_to_cached_hosts_too(plugin_loader, stubs, tmp_path):
    stub, built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    config = cached_config(tmp_path)
    run_plugin(tmp_path, config, cache=False)
    # The cache holds the instance's fields; the names are applied when the hosts are added.
    inventory, _plugin = run_plugin(tmp_path, dict(config, hostvars_prefix="aws_"), cache=True)
    assert built == ["eu-west-1"]
    assert inventory.get_host("i-00000000000000001").vars["aws_instance_id"] == "i-00000000000000001"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("hostvars_prefix", "aws-", "hostvars_prefix: 'aws-' is not the start of a variable name"),
        ("hostvars_prefix", "1st_", "hostvars_prefix: '1st_' is not the start of a variable name"),
        ("hostvars_suffix", "_ec2.x", "hostvars_suffix: '_ec2.x' may hold only letters, digits and _"),
    ],
)
def test_bad_hostvars_prefix_or_suffix_is_one_line_naming_it(plugin_loader, stubs, tmp_path, option, value, message):
    with pytest.raises(AnsibleError) as caught:
        run_plugin(tmp_path, {"regions": ["eu-west-1"], option: value})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_allow_duplicated_hosts_adds_one_host_per_name(plugin_loader, stubs, tmp_path):
    stub, _built, _params = stubs
    both = instance("i-00000000000000001", {"Name": "web-1", "Role": "web"})
    no_name = instance("i-00000000000000002", {"Role": "web"}, PrivateIpAddress="10.0.0.6")
    same_twice = instance("i-00000000000000003", {"Name": "10.0.0.7"}, PrivateIpAddress="10.0.0.7")
    stub("eu-west-1").add_response("describe_instances", page(both, no_name, same_twice))
    stub("eu-west-1").add_response("describe_instances", page(both, no_name, same_twice))
    config = {
        "regions": ["eu-west-1"],
        "hostnames": ["tag:Name", {"name": "private-ip-address", "prefix": "ip", "separator": "-"}, "tag:Name"],
        "keyed_groups": [{"key": "ec2_tags.Role", "prefix": "role"}],
    }
    inventory, _plugin = run_plugin(tmp_path, dict(config, allow_duplicated_hosts=True))
    assert sorted(inventory.hosts) == ["10.0.0.7", "ip-10.0.0.5", "ip-10.0.0.6", "ip-10.0.0.7", "web-1"]
    assert groups_of(inventory) == {"role_web": ["ip-10.0.0.5", "ip-10.0.0.6", "web-1"]}
    assert inventory.get_host("web-1").vars == inventory.get_host("ip-10.0.0.5").vars
    assert inventory.get_host("web-1").vars["instance_id"] == "i-00000000000000001"
    # The default: the first name that gives a value, one host per instance.
    inventory, _plugin = run_plugin(tmp_path, config)
    assert sorted(inventory.hosts) == ["10.0.0.7", "ip-10.0.0.6", "web-1"]


def test_hostnames_for_lists_every_name_once_in_order():
    hv = instance_hostvars(instance(tags={"Name": "web-1"}))
    prefs = instances.parse_hostnames(["tag:Missing", "tag:Name", "private-ip-address", "tag:Name", "ip-address"])
    assert instances.hostnames_for(hv, prefs) == ["web-1", "10.0.0.5"]
    assert instances.hostnames_for(hv, instances.parse_hostnames(["tag:Missing"])) == []


def test_unknown_options_are_named_in_a_warning(plugin_loader, stubs, tmp_path, capsys):
    stub, _built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    config = {"regions": ["eu-west-1"], "use_ssm_inventory": True, "hostname": ["tag:Name"], "aws_access_key": "AK"}
    inventory, _plugin = run_plugin(tmp_path, dict(config, aws_secret_key="s"))
    assert sorted(inventory.hosts) == ["i-00000000000000001"]
    err = " ".join(capsys.readouterr().err.split())
    assert "not an option of this plugin, ignored: hostname, use_ssm_inventory" in err
    assert "aws_access_key," not in err and "aws_secret_key" not in err  # aliases are options


def test_known_options_give_no_warning(plugin_loader, stubs, tmp_path, capsys):
    stub, _built, _params = stubs
    stub("eu-west-1").add_response("describe_instances", page(instance("i-00000000000000001")))
    run_plugin(tmp_path, {"regions": ["eu-west-1"], "iam_role_arn": "arn:aws:iam::210987654321:role/reader"})
    assert "not an option" not in capsys.readouterr().err
