# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: instances
short_description: EC2 instances of one or more regions as an inventory, fast
version_added: 0.1.0
description:
  - Lists EC2 instances with DescribeInstances in every region asked for, in parallel, and adds one host per
    instance.
  - "The configuration file name must end in C(instances.yml) or C(instances.yaml), and the file must start with
    C(plugin: bakery.ec2.instances)."
  - Host variables are the instance's fields in snake_case, with the same names as the
    C(amazon.aws.aws_ec2) inventory plugin (for example C(instance_id), C(instance_type), C(image_id),
    C(private_ip_address), C(placement.region), C(placement.availability_zone), C(vpc_id), C(subnet_id),
    C(state.name), C(launch_time)), plus C(owner_id), C(requester_id) and C(reservation_id) of the
    reservation. Tags are the dictionary C(ec2_tags), not C(tags), and no host variable uses a name that
    Ansible reserves (such a field gets the prefix C(ec2_)).
  - O(compose), O(groups) and O(keyed_groups) give exactly the results of ansible-core's templating. An
    expression that is only a variable path such as C(ec2_tags.Role), C(instance_type) or
    C(placement.availability_zone) is looked up directly instead of being rendered by Jinja for every host;
    anything else is rendered by Jinja as usual.
  - With O(cache=true), a cache hit makes no AWS call at all; the cache is written only when the inventory
    was fetched from AWS.
  - The group C(all) gets the variable C(bakery_ec2_regions), the sorted list of the regions this inventory
    listed (without the regions skipped under O(strict_permissions=false); with several configurations, the
    regions of all of them). It survives a synced copy of the inventory (C(ansible-inventory --list --export),
    what AWX's inventory sources keep), so a playbook can check, before it creates anything, that the region it
    works in is one the inventory lists (instances it launches in another region never appear in the inventory).
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    type: str
    required: true
    choices: [bakery.ec2.instances]
  regions:
    description:
      - Regions to list instances in.
      - An empty list means every region enabled for the account, found with DescribeRegions (called in
        O(region), or C(us-east-1) when that is not set).
    type: list
    elements: str
    default: []
  filters:
    description:
      - L(DescribeInstances filters,https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html)
        as a dictionary of filter name and value (or list of values).
      - Setting this replaces the default, so add C(instance-state-name) yourself to keep only running instances.
    type: dict
    default:
      instance-state-name: [running]
  include_filters:
    description:
      - More sets of filters. Instances matching any one of them (on its own, not combined with O(filters))
        are added too.
    type: list
    elements: dict
    default: []
  exclude_filters:
    description:
      - Sets of filters. Instances matching any one of them are left out, even when another filter includes them.
    type: list
    elements: dict
    default: []
  hostnames:
    description:
      - How a host is named, as an ordered list of preferences; the first that gives a non-empty value wins.
        An instance for which none gives a value is left out.
      - Each is a name, or a dictionary with O(hostnames[].name) and optional O(hostnames[].prefix) and
        O(hostnames[].separator).
      - Names are V(instance-id), V(private-ip-address), V(ip-address) (the public address), V(dns-name)
        (the public DNS name), V(private-dns-name), V(tag:Name) and V(tag:<key>) for any tag key.
    type: list
    elements: raw
    default: [instance-id]
    suboptions:
      name:
        description: One of the names above.
        type: str
        required: true
      prefix:
        description: Put in front of the value, followed by O(hostnames[].separator).
        type: str
        default: ''
      separator:
        description: Put between O(hostnames[].prefix) and the value, when there is a prefix.
        type: str
        default: _
  ansible_host_preference:
    description:
      - Ordered list of the addresses to put into C(ansible_host); the first that is set on the instance wins.
      - The default reaches instances on their private address, as the bakery.ec2 flow does.
      - An empty list leaves C(ansible_host) unset (O(compose) can still set it).
    type: list
    elements: str
    choices: [private-ip-address, ip-address, private-dns-name, dns-name]
    default: [private-ip-address]
  assume_role_arn:
    description:
      - ARN of an IAM role to assume with STS before listing instances, for example in another account.
      - The alias O(iam_role_arn) is the name C(amazon.aws.aws_ec2) uses.
    type: str
    aliases: [iam_role_arn]
  hostvars_prefix:
    description:
      - Put in front of the name of every host variable that comes from AWS (C(instance_id) becomes
        C(aws_instance_id) with V(aws_)), as C(amazon.aws.aws_ec2) does.
      - Variables set by this plugin's configuration (C(ansible_host), O(compose)) are not renamed;
        O(compose), O(groups) and O(keyed_groups) see the renamed variables, O(hostnames) the instance's fields.
      - Letters, digits and underscores only, not starting with a digit.
    type: str
    version_added: 0.2.0
  hostvars_suffix:
    description:
      - Put after the name of every host variable that comes from AWS (C(instance_id) becomes
        C(instance_id_ec2) with V(_ec2)), as C(amazon.aws.aws_ec2) does; combines with O(hostvars_prefix).
      - Letters, digits and underscores only.
    type: str
    version_added: 0.2.0
  allow_duplicated_hosts:
    description:
      - When V(false), an instance is one host, named by the first entry of O(hostnames) that gives a value.
      - When V(true), an instance is one host for every entry of O(hostnames) that gives a value (the same
        name only once), each with the same host variables and groups, as C(amazon.aws.aws_ec2) does.
    type: bool
    default: false
    version_added: 0.2.0
  max_concurrency:
    description:
      - How many DescribeInstances listings (one per region and set of filters) run at the same time.
    type: int
    default: 8
  strict_permissions:
    description:
      - When V(false), a region that answers C(AuthFailure), C(UnauthorizedOperation) or C(OptInRequired)
        (denied, or not opted in) is skipped with a warning naming it. When V(true), that error fails the
        inventory with one line naming the region and this option.
    type: bool
    default: true
extends_documentation_fragment:
  - bakery.ec2.connection.plugin
  - constructed
  - inventory_cache
notes:
  - Throttling, 5xx answers and lost connections are retried with jittered exponential backoff; an error that
    remains fails the inventory with one line giving the AWS operation, error code and message.
  - Data from AWS (tags included) is never templated; only the expressions of the configuration file are.
  - A key of the configuration file that is not an option of this plugin (an option of C(amazon.aws.aws_ec2) it
    does not have, or a typo) is ignored and named in a warning.
seealso:
  - ref: ansible_collections.bakery.ec2.docsite.migrating_from_aws_ec2
    description: Every option of C(amazon.aws.aws_ec2) and of this plugin, side by side, with an example.
  - name: amazon.aws.aws_ec2
    description: The inventory plugin of amazon.aws; see the migration example.
    link: https://docs.ansible.com/ansible/latest/collections/amazon/aws/aws_ec2_inventory.html
"""

EXAMPLES = r"""
# prod.instances.yml: running instances of two regions, grouped by role tag, instance type and zone.
plugin: bakery.ec2.instances
regions: [eu-west-1, us-east-1]
hostnames:
  - tag:Name
  - instance-id
keyed_groups:
  - key: ec2_tags.Role
    prefix: role
  - key: instance_type
    prefix: type
  - key: placement.availability_zone
    prefix: az
groups:
  web: "'web' in (ec2_tags.Role | default(''))"
compose:
  ansible_user: "'admin'"

---
# all.instances.yml: every enabled region, every state but terminated, skipping regions we may not read.
plugin: bakery.ec2.instances
regions: []
filters:
  instance-state-name: [pending, running, stopping, stopped]
strict_permissions: false
max_concurrency: 16

---
# team.instances.yml: instances of team a, plus any tagged Shared=yes, but never those tagged Skip=yes.
plugin: bakery.ec2.instances
regions: [eu-west-1]
filters:
  tag:Team: a
  instance-state-name: running
include_filters:
  - tag:Shared: "yes"
    instance-state-name: running
exclude_filters:
  - tag:Skip: "yes"
hostnames:
  - name: tag:Name
    prefix: a
    separator: "-"
ansible_host_preference: [ip-address, private-ip-address]

---
# cached.instances.yml: read from the cache for an hour; a cache hit makes no AWS call.
plugin: bakery.ec2.instances
regions: [eu-west-1]
assume_role_arn: arn:aws:iam::123456789012:role/inventory-reader
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /var/cache/ansible-inventory
cache_timeout: 3600

---
# names.instances.yml: an instance is a host under its Name tag and under its private address, and the host
# variables from AWS are named aws_<name>_ec2 (aws_instance_id_ec2, aws_ec2_tags_ec2), as aws_ec2 names them.
plugin: bakery.ec2.instances
regions: [eu-west-1]
iam_role_arn: arn:aws:iam::123456789012:role/inventory-reader
hostnames:
  - tag:Name
  - private-ip-address
allow_duplicated_hosts: true
hostvars_prefix: aws_
hostvars_suffix: _ec2
keyed_groups:
  - key: aws_instance_type_ec2
    prefix: type

---
# Migration from amazon.aws.aws_ec2 (every option of both, side by side: the collection's migration guide).
# Before (aws_ec2.yml):
#
#   plugin: amazon.aws.aws_ec2
#   regions: [eu-west-1]
#   filters:
#     instance-state-name: running
#   hostnames: [instance-id]
#   keyed_groups:
#     - key: tags.Role
#       prefix: role
#     - key: instance_type
#   compose:
#     ansible_host: private_ip_address
#
# After (aws.instances.yml): the file name ends in instances.yml, tags are ec2_tags, and the group
# aws_ec2 that held every host is made with a group condition.
plugin: bakery.ec2.instances
regions: [eu-west-1]
filters:
  instance-state-name: running
hostnames: [instance-id]
keyed_groups:
  - key: ec2_tags.Role
    prefix: role
  - key: instance_type
compose:
  ansible_host: private_ip_address
groups:
  aws_ec2: true
"""

import copy
import re
from typing import TYPE_CHECKING, Any

from ansible import constants as C
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars
from ansible_collections.bakery.ec2.plugins.module_utils._connection import HAS_BOTO3, connection_params_from
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_fetch import (
    Listing,
    all_regions,
    ansible_filters,
    connect,
    paused_gc,
)
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_hostvars import RESERVED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ansible.inventory.data import InventoryData
    from ansible.inventory.host import Host
    from ansible.parsing.dataloader import DataLoader

    # One parsed ``hostnames`` entry: (variable, tag_key, prefix, separator).
    HostnamePreference = tuple[str | None, str | None, str, str]

try:
    from ansible.template import is_trusted_as_template
except ImportError:  # ansible-core < 2.19: every configuration string is trusted

    def is_trusted_as_template(value: object) -> bool:
        return True


# The variable of the group ``all`` that names the regions the inventory listed (see DOCUMENTATION).
REGIONS_VAR = "bakery_ec2_regions"

# Hostname and ansible_host preferences -> where the value sits in the host variables.
ADDRESS_VARS = {
    "instance-id": "instance_id",
    "private-ip-address": "private_ip_address",
    "ip-address": "public_ip_address",
    "dns-name": "public_dns_name",
    "private-dns-name": "private_dns_name",
}


def parse_hostnames(preferences: Iterable[Any] | None) -> list[HostnamePreference]:
    """Validate ``hostnames`` -> list of ``(variable, tag_key, prefix, separator)``; raise AnsibleParserError."""
    parsed = []
    for pref in preferences or ():
        if isinstance(pref, str):
            pref = {"name": pref}
        if not isinstance(pref, dict) or not isinstance(pref.get("name"), str):
            raise AnsibleParserError(f"hostnames: {pref!r} must be a name or a dictionary with a name")
        unknown = set(pref) - {"name", "prefix", "separator"}
        if unknown:
            raise AnsibleParserError(f"hostnames: unknown key(s) {', '.join(sorted(unknown))} in {pref!r}")
        name = pref["name"]
        if name.startswith("tag:") and len(name) > 4:
            var, tag = None, name[4:]
        elif name in ADDRESS_VARS:
            var, tag = ADDRESS_VARS[name], None
        else:
            choices = ", ".join([*ADDRESS_VARS, "tag:<key>"])
            raise AnsibleParserError(f"hostnames: {name!r} is not one of {choices}")
        parsed.append((var, tag, str(pref.get("prefix") or ""), str(pref.get("separator", "_"))))
    return parsed


def hostname_for(hostvars: dict[str, Any], preferences: Iterable[HostnamePreference]) -> str | None:
    """The first non-empty hostname preference for these host variables, or None."""
    for var, tag, prefix, separator in preferences:
        value = hostvars.get(var) if tag is None else hostvars["ec2_tags"].get(tag)
        if value:
            return f"{prefix}{separator}{value}" if prefix else str(value)
    return None


def hostnames_for(hostvars: dict[str, Any], preferences: Iterable[HostnamePreference]) -> list[str]:
    """Every non-empty hostname preference for these host variables, in order, each name once."""
    names = []
    for pref in preferences:
        name = hostname_for(hostvars, (pref,))
        if name is not None and name not in names:
            names.append(name)
    return names


_VAR_PREFIX = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*)?$")
_VAR_SUFFIX = re.compile(r"^[A-Za-z0-9_]*$")


def hostvars_renamer(prefix: str | None, suffix: str | None) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """``hostvars_prefix``/``hostvars_suffix`` -> a function renaming a host's AWS variables, or None.

    Only top-level names change (``instance_id`` -> ``aws_instance_id_ec2``), as amazon.aws's aws_ec2 does.
    Raises AnsibleParserError naming a value that would not make a variable name.
    """
    prefix, suffix = prefix or "", suffix or ""
    if not _VAR_PREFIX.match(prefix):
        raise AnsibleParserError(
            f"hostvars_prefix: {prefix!r} is not the start of a variable name (letters, digits, _; not a digit first)"
        )
    if not _VAR_SUFFIX.match(suffix):
        raise AnsibleParserError(f"hostvars_suffix: {suffix!r} may hold only letters, digits and _")
    if not (prefix or suffix):
        return None
    return lambda hostvars: {f"{prefix}{name}{suffix}": value for name, value in hostvars.items()}


# --- constructed: plain variable paths without Jinja -----------------------------------------------

_PATH = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
# Jinja resolves ``a.b`` as an attribute before an item, so these names are left to Jinja.
_ATTRIBUTE_NAMES = frozenset(n for kind in (dict, list, str, int, float, bool, type(None)) for n in dir(kind))
_JINJA_WORDS = frozenset(("true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"))
# Variables that only the inventory's view of a host has (Host.get_magic_vars()).
MAGIC_VARS = frozenset(("inventory_hostname", "inventory_hostname_short", "group_names"))
_UNDEFINED = object()


def plain_path(expression: object, reserved_first: frozenset[str] = frozenset()) -> tuple[str, ...] | None:
    """The variable path of an expression that is nothing but one (``ec2_tags.Role``), else None.

    Only trusted expressions qualify (an untrusted one is Jinja's to refuse), and no segment may be one that
    Jinja would resolve differently from a dictionary look-up: an attribute name, a keyword, or a first
    name in ``reserved_first`` (Jinja globals, magic and extra variables).
    """
    if not isinstance(expression, str) or not is_trusted_as_template(expression):
        return None
    match = _PATH.match(expression)
    if not match:
        return None
    parts = tuple(match.group(1).split("."))
    if parts[0] in reserved_first or parts[0] in _JINJA_WORDS or parts[0] in MAGIC_VARS:
        return None
    if any(part in _ATTRIBUTE_NAMES or part in _JINJA_WORDS for part in parts[1:]):
        return None
    return parts


def resolve_path(parts: tuple[str, ...], variables: dict[str, Any]) -> tuple[bool, Any]:
    """Follow ``parts`` through nested dicts.

    Returns ``(True, value)`` when found, ``(True, _UNDEFINED)`` when Jinja would find the variable
    undefined, and ``(False, None)`` when Jinja must decide (a value that is not a dict on the way).
    """
    value = variables.get(parts[0], _UNDEFINED)
    for part in parts[1:]:
        if value is _UNDEFINED:
            break
        if value.__class__ is not dict:  # exactly a dict: a subclass may have attributes Jinja would find first
            return False, None
        value = value.get(part, _UNDEFINED)
    return True, value


class _Skip(Exception):
    """An expression that is undefined for a host, with strict off: the entry is skipped, as Jinja's error would."""


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "bakery.ec2.instances"

    # --- AnsiblePlugin entry points ---

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("instances.yml", "instances.yaml"))

    def parse(self, inventory: InventoryData, loader: DataLoader, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path)
        if not HAS_BOTO3:
            raise AnsibleParserError("bakery.ec2.instances needs the boto3 and botocore Python libraries")
        self._warn_unknown_options(self._read_config_data(path), path)
        self._naming = (
            parse_hostnames(self.get_option("hostnames")),
            [ADDRESS_VARS[name] for name in self.get_option("ansible_host_preference") or ()],
            hostvars_renamer(self.get_option("hostvars_prefix"), self.get_option("hostvars_suffix")),
            self.get_option("allow_duplicated_hosts"),
        )

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                update_cache = True
        self._prepare_constructed()
        with paused_gc():
            if hosts is not None:
                self._populate(hosts)
                self._note_regions(self.get_option("regions") or [])
                return
            kept = [] if update_cache else None
            try:
                listing = self._listing()
                for page in listing.pages():  # the hosts of each page go in, then the page is let go
                    if kept is not None:
                        kept.extend(page)
                    self._populate(page)
                    del page
            except AwsError as err:
                raise AnsibleParserError(f"bakery.ec2.instances: {err}") from None
            for skipped in listing.skipped:
                self.display.warning(
                    f"bakery.ec2.instances: skipping region {skipped.region} (strict_permissions: false): "
                    f"{skipped.error}"
                )
            self._note_regions(sorted(set(listing.clients) - {skipped.region for skipped in listing.skipped}))
            if update_cache:
                self._cache[cache_key] = kept

    def _note_regions(self, regions: list[str]) -> None:
        """``bakery_ec2_regions`` of the group ``all``: the regions listed, with those of other configurations."""
        if not regions:  # a cache hit of a configuration naming no region: its regions are unknown here
            return
        group = self.inventory.groups["all"]
        known = group.get_vars().get(REGIONS_VAR) or []
        self.inventory.set_variable("all", REGIONS_VAR, sorted({*known, *regions}))

    def _warn_unknown_options(self, config: dict[str, Any], path: str) -> None:
        """Name the keys of the file that are no option of this plugin: ansible-core ignores them silently.

        An option of amazon.aws's aws_ec2 that this plugin does not have (use_ssm_inventory) or a typo
        (hostname) would otherwise do nothing without a word.
        """
        definitions = C.config.get_configuration_definitions("inventory", self._load_name) or {}
        known = {"plugin", *definitions}
        for option in definitions.values():
            known.update(option.get("aliases") or ())
        unknown = sorted(str(key) for key in config if key not in known)
        if unknown:
            self.display.warning(
                f"bakery.ec2.instances: {path}: not an option of this plugin, ignored: {', '.join(unknown)}"
            )

    # --- AWS ---

    def _listing(self) -> Listing:
        """The regions and filters of the configuration, as a ``Listing`` ready to run."""
        params, session = connect(connection_params_from(self.get_option), self.get_option("assume_role_arn"))
        queries = [ansible_filters(self.get_option("filters"))]
        queries += [ansible_filters(f) for f in self.get_option("include_filters") or ()]
        return Listing(
            params,
            session,
            self.get_option("regions") or all_regions(params, session),
            queries,
            [ansible_filters(f) for f in self.get_option("exclude_filters") or ()],
            max_concurrency=self.get_option("max_concurrency"),
            strict_permissions=self.get_option("strict_permissions"),
        )

    # --- inventory ---

    def _populate(self, hosts: Iterable[dict[str, Any]]) -> None:
        """Add the hosts; names and ``ansible_host`` come from the instance's fields, as they are cached.

        ``rename`` (hostvars_prefix/suffix) applies to the variables the host gets and constructed sees;
        with ``all_names`` (allow_duplicated_hosts) every hostname preference that gives a value is a host.
        """
        preferences, host_preference, rename, all_names = self._naming
        inventory = self.inventory
        strict = self.get_option("strict")
        for fields in hosts:
            if all_names:
                names = hostnames_for(fields, preferences)
            else:
                name = hostname_for(fields, preferences)
                names = [name] if name else []
            if not names:
                continue
            address = next((fields[var] for var in host_preference if fields.get(var)), None)
            hostvars = rename(fields) if rename else fields
            for name in names:
                new = name not in inventory.hosts
                inventory.add_host(name)
                host = inventory.hosts[name]
                if new:
                    host.vars.update(hostvars)  # the same as set_variable for each, on a host that has none yet
                else:
                    for key, value in hostvars.items():
                        inventory.set_variable(name, key, value)
                if address:
                    inventory.set_variable(name, "ansible_host", address)
                self._construct(name, host, hostvars, strict)

    # --- constructed (same results as Constructable's helpers, which amazon.aws's aws_ec2 calls) ---

    def _prepare_constructed(self) -> None:
        self._use_extra = self.get_option("use_extra_vars")
        first = set(RESERVED)  # includes every Jinja and Ansible global (range, lookup, omit, ...)
        if self._use_extra:
            first.update(self._vars or ())
        self._paths = {}
        self._first_reserved = frozenset(first)
        self._group_names = {}
        self._leading_separator = self.get_option("leading_separator")

    def _path(self, expression: str) -> tuple[str, ...] | None:
        key = (type(expression), expression)
        if key not in self._paths:
            self._paths[key] = plain_path(expression, self._first_reserved)
        return self._paths[key]

    def _evaluate(
        self,
        expression: Any,
        variables: dict[str, Any],
        full_variables: Callable[[], dict[str, Any]],
        strict: bool,
    ) -> Any:
        """``Constructable._compose``; a plain path is looked up, anything else rendered by Jinja."""
        parts = self._path(expression) if isinstance(expression, str) else None
        if parts is not None:
            decided, value = resolve_path(parts, variables)
            if decided and value is not _UNDEFINED:
                return value
            if decided and not strict:
                raise _Skip(expression)
        # Jinja decides: exactly Constructable._compose (its error is the one strict mode reports).
        variables = full_variables()
        if self._use_extra:
            variables = combine_vars(variables, self._vars)
        self.templar.available_variables = variables
        return self.templar.evaluate_expression(expression)

    def _sanitize(self, name: str) -> str:
        safe = self._group_names.get(name)
        if safe is None:
            safe = self._group_names[name] = self._sanitize_group_name(name)
        return safe

    def _construct(self, name: str, host: Host, hostvars: dict[str, Any], strict: bool) -> None:
        """compose, groups, keyed_groups for one host, as aws_ec2 calls Constructable's helpers."""
        inventory = self.inventory

        def inventory_vars() -> dict[str, Any]:
            return combine_vars(hostvars, host.get_vars())

        compose = self.get_option("compose")
        if compose and isinstance(compose, dict):
            composed = []
            for varname, expression in compose.items():
                try:
                    value = self._evaluate(expression, hostvars, lambda: hostvars, strict)
                except Exception as err:
                    if strict:
                        raise AnsibleError(f"Could not set {varname} for host {name}: {to_native(err)}") from None
                    continue
                if isinstance(value, (dict, list)):
                    value = copy.deepcopy(value)  # Jinja hands back a copy, never the host's own container
                composed.append((varname, value))
            for varname, value in composed:
                inventory.set_variable(name, varname, value)

        groups = self.get_option("groups")
        if groups and isinstance(groups, dict):
            fixed = None
            for group_name, conditional in groups.items():
                group_name = self._sanitize(group_name)
                try:
                    if isinstance(conditional, bool):
                        result = conditional
                    else:
                        if fixed is None:
                            fixed = inventory_vars()
                        self.templar.available_variables = fixed
                        result = self.templar.evaluate_conditional(conditional)
                except Exception as err:
                    if strict:
                        raise AnsibleParserError(
                            f"Could not add host {name} to group {group_name}: {to_native(err)}"
                        ) from None
                    continue
                if result:
                    inventory.add_child(inventory.add_group(group_name), name)

        keyed_groups = self.get_option("keyed_groups")
        if keyed_groups and isinstance(keyed_groups, list):
            for keyed in keyed_groups:
                if not (keyed and isinstance(keyed, dict)):
                    raise AnsibleParserError(f"Invalid keyed group entry, it must be a dictionary: {keyed} ")
                self._keyed_group(keyed, name, host, inventory_vars, strict)

    def _keyed_group(
        self,
        keyed: dict[str, Any],
        name: str,
        host: Host,
        inventory_vars: Callable[[], dict[str, Any]],
        strict: bool,
    ) -> None:
        inventory = self.inventory
        expression = keyed.get("key")
        try:
            key = self._evaluate(expression, host.vars, inventory_vars, strict)
        except Exception as err:
            if strict and not isinstance(err, _Skip):
                raise AnsibleParserError(
                    f"Could not generate group for host {name} from {expression} entry: {to_native(err)}"
                ) from None
            return
        default_value = keyed.get("default_value")
        trailing_separator = keyed.get("trailing_separator")
        if trailing_separator is not None and default_value is not None:
            raise AnsibleParserError(
                "parameters are mutually exclusive for keyed groups: default_value|trailing_separator"
            )
        use_default = key in (None, "") and default_value is not None
        if not (key or use_default):
            if strict and key not in ([], {}):
                raise AnsibleParserError(f"No key or key resulted empty for {expression} in host {name}, invalid entry")
            return
        prefix = keyed.get("prefix", "")
        sep = keyed.get("separator", "_")
        parent = keyed.get("parent_group")
        if parent is not None and self.templar.is_possibly_template(parent):
            try:
                self.templar.available_variables = inventory_vars()
                parent = self.templar.template(parent)
            except Exception as err:
                if type(err).__name__ == "AnsibleValueOmittedError":
                    parent = None
                elif strict:
                    raise AnsibleParserError(
                        f"Could not generate parent group {parent!r} for group {key!r}: {err}"
                    ) from err
                else:
                    return

        names = []
        if use_default:
            names.append(default_value)
        elif isinstance(key, str):
            names.append(key)
        elif isinstance(key, list):
            for item in key:
                names.append(default_value if item in (None, "") and default_value is not None else item)
        elif isinstance(key, dict):
            for gname, gval in key.items():
                bare = f"{gname}{sep}{gval}"
                if gval in (None, ""):
                    if default_value is not None:
                        bare = f"{gname}{sep}{default_value}"
                    elif trailing_separator is False:
                        bare = gname
                names.append(bare)
        else:
            raise AnsibleParserError(
                f"Invalid group name format, expected a string or a list of them or dictionary, got: {type(key)}"
            )
        for bare in names:
            if prefix == "" and self._leading_separator is False:
                sep = ""
            group = inventory.add_group(self._sanitize(f"{prefix}{sep}{bare}"))
            inventory.add_host(name, group)
            if parent:
                parent_name = self._sanitize(parent)
                inventory.add_group(parent_name)
                inventory.add_child(parent_name, group)
