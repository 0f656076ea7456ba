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
from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree

from ansible import constants as C
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars
from ansible.vars.reserved import get_reserved_names
from ansible_collections.bakery.ec2.plugins.module_utils._aws import (
    HAS_BOTO3,
    AwsError,
    build_client,
    build_session,
    connection_params_from,
    tags_to_dict,
)

try:
    from botocore.utils import parse_timestamp
except ImportError:  # pragma: no cover - reported by parse()
    parse_timestamp = None

try:
    from ansible.template import is_trusted_as_template
except ImportError:  # ansible-core < 2.19: every configuration string is trusted

    def is_trusted_as_template(value):
        return True


PERMISSION_CODES = frozenset(("AuthFailure", "UnauthorizedOperation", "OptInRequired"))
DEFAULT_REGION = "us-east-1"

# --- host variables ---------------------------------------------------------------------------------

RESERVED = frozenset(get_reserved_names())
# CamelCase API name -> snake_case host variable name, filled once per name (no regex per key).
_SNAKE = {}
_FIRST = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")


def snake_name(name):
    """``PrivateIpAddress`` -> ``private_ip_address``, as amazon.aws names it; memoised in a plain dict."""
    out = _SNAKE.get(name)
    if out is None:
        out = _SNAKE[name] = _ACRONYM.sub(r"\1_\2", _FIRST.sub(r"\1_\2", name)).lower()
    return out


def _snake_value(value, strings):
    kind = type(value)
    if kind is str:
        # Identical short strings (zones, types, VPC and subnet IDs) are shared between hosts.
        return strings.setdefault(value, value) if len(value) <= 64 else value
    if kind is dict:
        out = {}
        for key, item in value.items():
            out[_SNAKE.get(key) or snake_name(key)] = _snake_value(item, strings)
        return out
    if kind is list:
        return [_snake_value(item, strings) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def instance_hostvars(instance, reservation=None, strings=None, region=None):
    """One DescribeInstances instance (with its reservation) -> host variables.

    Names are amazon.aws's snake_case ones, tags are ``ec2_tags`` (a dict), and any top-level name that
    Ansible reserves gets the prefix ``ec2_``. ``placement.region`` is added, as amazon.aws does: the
    ``region`` that was queried (a Local or Wavelength zone's name does not end in a letter after it).
    """
    strings = {} if strings is None else strings
    out = {}
    for key, item in instance.items():
        if key == "Tags":
            out["ec2_tags"] = tags_to_dict(item)
            continue
        name = _SNAKE.get(key) or snake_name(key)
        if name in RESERVED:
            name = "ec2_" + name
        out[name] = _snake_value(item, strings)
    out.setdefault("ec2_tags", {})
    for key in ("OwnerId", "RequesterId", "ReservationId"):
        if reservation and reservation.get(key):
            out[snake_name(key)] = strings.setdefault(reservation[key], reservation[key])
    if region:
        set_region(out, region)
    return out


def set_region(hostvars, region):
    """``placement.region`` of one host: the region its instance was listed in."""
    placement = hostvars.get("placement")
    if isinstance(placement, dict):
        placement["region"] = region
    else:
        hostvars["placement"] = {"region": region}


# --- DescribeInstances pages straight to host variables ---------------------------------------------
#
# botocore's generic XML parser builds every page as CamelCase dicts from the API model, at about 2 ms
# per instance (more than the whole rest of the inventory). DescribeInstances pages are parsed here
# instead, with a schema compiled once from the same API model, straight into the host variables that
# instance_hostvars() makes of botocore's result (the unit tests prove both give the same).

HOSTVARS_KEY = "BakeryHostVars"  # where the hook leaves a page's host variables in the response
_XMLNS = re.compile(rb"\sxmlns=\"[^\"]*\"")
_SCALAR_KINDS = {"boolean": "b", "integer": "i", "long": "i", "float": "f", "double": "f", "timestamp": "t"}


def _compile_shape(shape, memo, top=False):
    """API shape -> ``(kind, payload)``: ``("s", {xml_name: (var, spec)})``, ``("l", spec)`` or a scalar kind."""
    if shape.type_name == "structure":
        key = (shape.name, top)
        if key in memo:
            return memo[key]
        members = {}
        spec = memo[key] = ("s", members)
        for member_name, member in shape.members.items():
            var = snake_name(member_name)
            if top and var in RESERVED:
                var = "ec2_" + var
            xml_name = member.serialization.get("name") or member_name
            members[xml_name] = (var, _compile_shape(member, memo))
        return spec
    if shape.type_name == "list":
        return ("l", _compile_shape(shape.member, memo))
    return (_SCALAR_KINDS.get(shape.type_name, "x"), None)


class PageParser:
    """Parses DescribeInstances XML pages into ``(host variables, next token)`` with a compiled schema."""

    def __init__(self, service_model, strings):
        output = service_model.operation_model("DescribeInstances").output_shape
        reservation = output.members["Reservations"].member
        memo = {}
        self.instance = _compile_shape(reservation.members["Instances"].member, memo, top=True)[1]
        self.strings = strings
        self.times = {}
        # Where the reservation fields sit in the XML, and the instances inside a reservation.
        self.reservation_fields = {
            reservation.members[name].serialization.get("name", name): snake_name(name)
            for name in ("OwnerId", "RequesterId", "ReservationId")
        }
        self.instances_tag = reservation.members["Instances"].serialization.get("name", "Instances")
        tags = reservation.members["Instances"].member.members["Tags"]
        self.tags_tag = tags.serialization.get("name", "Tags")
        self.token_tag = output.members["NextToken"].serialization.get("name", "NextToken")
        self.reservations_tag = output.members["Reservations"].serialization.get("name", "Reservations")

    def hook(self, response_dict, customized_response_dict, **_kwargs):
        """botocore ``before-parse`` handler: parse a page here and leave botocore an empty one."""
        if response_dict.get("status_code") != 200:
            return
        try:
            hosts, token = self.parse(response_dict["body"])
        except ElementTree.ParseError:
            return  # botocore parses it and reports the error
        customized_response_dict[HOSTVARS_KEY] = hosts
        if token:
            customized_response_dict["NextToken"] = token
        response_dict["body"] = b"<DescribeInstancesResponse/>"

    def parse(self, body):
        # Data from the endpoint, parsed with the same ElementTree parser botocore uses.
        body = _XMLNS.sub(b"", body[:512], count=1) + body[512:]  # tags without the namespace
        root = ElementTree.fromstring(body)  # noqa: S314
        hosts = []
        token = None
        for section in root:
            if section.tag == self.reservations_tag:
                for reservation in section:
                    self._reservation(reservation, hosts)
            elif section.tag == self.token_tag:
                token = section.text or None
        return hosts, token

    def _reservation(self, node, hosts):
        fields = {}
        instances = ()
        for child in node:
            tag = child.tag
            if tag == self.instances_tag:
                instances = child
            elif tag in self.reservation_fields and child.text:
                fields[self.reservation_fields[tag]] = self.strings.setdefault(child.text, child.text)
        for item in instances:
            hostvars = self._structure(item, self.instance, top=True)
            hostvars.update(fields)
            hosts.append(hostvars)

    def _structure(self, node, members, top=False):
        out = {}
        for child in node:
            member = members.get(child.tag)
            if member is None:
                continue  # not in the API model: botocore ignores it too
            var, spec = member
            if top and child.tag == self.tags_tag:
                out["ec2_tags"] = self._tags(child)
            else:
                out[var] = self._value(child, spec)
        if top:
            out.setdefault("ec2_tags", {})
        return out

    def _tags(self, node):
        tags = {}
        for item in node:
            key = value = ""
            for field in item:
                if field.tag == "key":
                    key = field.text or ""
                elif field.tag == "value":
                    value = field.text or ""
            tags[key] = self.strings.setdefault(value, value) if len(value) <= 64 else value
        return tags

    def _value(self, node, spec):
        kind, payload = spec
        if kind == "s":
            return self._structure(node, payload)
        if kind == "l":
            return [self._value(item, payload) for item in node]
        text = node.text or ""
        if kind == "b":
            return text == "true"
        if kind == "i":
            return int(text)
        if kind == "f":
            return float(text)
        if kind == "t":
            stamp = self.times.get(text)
            if stamp is None:
                stamp = self.times[text] = parse_timestamp(text).isoformat()
            return stamp
        return self.strings.setdefault(text, text) if len(text) <= 64 else text


# Hostname and ansible_host preferences -> where the value sits in the host variables.
ADDRESS_VARS = {
    "instance-id": "instance_id",
    "private-ip-address": "private_ip_address",
    "ip-address": "public_ip_address",
    "dns-name": "public_dns_name",
    "private-dns-name": "private_dns_name",
}


def parse_hostnames(preferences):
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


def hostname_for(hostvars, preferences):
    """The first non-empty hostname preference for these host variables, or None."""
    for var, tag, prefix, separator in preferences:
        value = hostvars.get(var) if tag is None else hostvars["ec2_tags"].get(tag)
        if value:
            return f"{prefix}{separator}{value}" if prefix else str(value)
    return None


def hostnames_for(hostvars, preferences):
    """Every non-empty hostname preference for these host variables, in order, each name once."""
    names = []
    for pref in preferences:
        name = hostname_for(hostvars, (pref,))
        if name is not None and name not in names:
            names.append(name)
    return names


_VAR_PREFIX = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*)?$")
_VAR_SUFFIX = re.compile(r"^[A-Za-z0-9_]*$")


def hostvars_renamer(prefix, suffix):
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


def ansible_filters(filters):
    """``{'tag:Role': 'web'}`` -> ``[{'Name': 'tag:Role', 'Values': ['web']}]``."""
    out = []
    for name, value in (filters or {}).items():
        values = value if isinstance(value, list) else [value]
        out.append({"Name": str(name), "Values": [str(v) for v in values]})
    return out


# --- constructed: plain variable paths without Jinja -----------------------------------------------

_PATH = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
# Jinja resolves ``a.b`` as an attribute before an item, so these names are left to Jinja.
_ATTRIBUTE_NAMES = frozenset(n for kind in (dict, list, str, int, float, bool, type(None)) for n in dir(kind))
_JINJA_WORDS = frozenset(("true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"))
# Variables that only the inventory's view of a host has (Host.get_magic_vars()).
MAGIC_VARS = frozenset(("inventory_hostname", "inventory_hostname_short", "group_names"))
_UNDEFINED = object()


def plain_path(expression, reserved_first=frozenset()):
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


def resolve_path(parts, variables):
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


class _Skipped:
    """A region skipped for lack of permissions (strict_permissions=false)."""

    def __init__(self, region, error):
        self.region = region
        self.error = error


class _Skip(Exception):
    """An expression that is undefined for a host, with strict off: the entry is skipped, as Jinja's error would."""


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "bakery.ec2.instances"

    # --- AnsiblePlugin entry points ---

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("instances.yml", "instances.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        if not HAS_BOTO3:
            raise AnsibleParserError("bakery.ec2.instances needs the boto3 and botocore Python libraries")
        self._warn_unknown_options(self._read_config_data(path), path)
        preferences = parse_hostnames(self.get_option("hostnames"))
        host_preference = [ADDRESS_VARS[name] for name in self.get_option("ansible_host_preference") or ()]
        rename = hostvars_renamer(self.get_option("hostvars_prefix"), self.get_option("hostvars_suffix"))

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if hosts is None:
            try:
                hosts = self._fetch()
            except AwsError as err:
                raise AnsibleParserError(f"bakery.ec2.instances: {err}") from None
        if update_cache:
            self._cache[cache_key] = hosts
        self._populate(hosts, preferences, host_preference, rename, self.get_option("allow_duplicated_hosts"))

    def _warn_unknown_options(self, config, path):
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

    def _connection_params(self):
        return connection_params_from(self.get_option)

    def _fetch(self):
        """Every instance of every region and filter set -> list of host variables, in region order."""
        params = self._connection_params()
        session = build_session(params)
        if self.get_option("assume_role_arn"):
            params = self._assume_role(params, session)
            session = build_session(params)
        regions = self.get_option("regions") or self._all_regions(params, session)

        queries = [ansible_filters(self.get_option("filters"))]
        queries += [ansible_filters(f) for f in self.get_option("include_filters") or ()]
        excludes = [ansible_filters(f) for f in self.get_option("exclude_filters") or ()]
        # A boto3 session is not thread-safe, its clients are: build them here, use them in the workers.
        clients = {region: build_client(params, region=region, session=session) for region in regions}
        strings = {}
        parser = None
        for client in clients.values():
            parser = parser or PageParser(client.client.meta.service_model, strings)
            client.client.meta.events.register("before-parse.ec2.DescribeInstances", parser.hook)
        jobs = [(region, filters, False) for region in regions for filters in queries]
        jobs += [(region, filters, True) for region in regions for filters in excludes]

        workers = max(1, min(self.get_option("max_concurrency"), len(jobs)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._list, clients[region], filters, strings) for region, filters, _ex in jobs]
            results = [future.result() for future in futures]

        for found in results:
            if isinstance(found, _Skipped):
                self.display.warning(
                    f"bakery.ec2.instances: skipping region {found.region} (strict_permissions: false): {found.error}"
                )
        results = [None if isinstance(found, _Skipped) else found for found in results]
        excluded = set()
        for (_region, _filters, exclude), found in zip(jobs, results):  # noqa: B905 - Python 3.9 has no zip(strict=)
            if exclude and found:
                excluded.update(hv["instance_id"] for hv in found)
        seen = set()
        hosts = []
        for (_region, _filters, exclude), found in zip(jobs, results):  # noqa: B905 - Python 3.9 has no zip(strict=)
            if exclude or found is None:
                continue
            for hostvars in found:
                iid = hostvars["instance_id"]
                if iid not in seen and iid not in excluded:
                    seen.add(iid)
                    hosts.append(hostvars)
        return hosts

    def _list(self, client, filters, strings):
        """Host variables of the instances matching ``filters`` in one region, or why it is skipped."""
        found = []
        try:
            kwargs = {"Filters": filters, "MaxResults": 1000}
            while True:
                page = client.call("describe_instances", **kwargs)
                for hostvars in page.get(HOSTVARS_KEY, ()):
                    set_region(hostvars, client.region)
                    found.append(hostvars)
                for reservation in page.get("Reservations", ()):
                    for instance in reservation.get("Instances", ()):
                        found.append(instance_hostvars(instance, reservation, strings, client.region))
                token = page.get("NextToken")
                if not token:
                    return found
                kwargs["NextToken"] = token
        except AwsError as err:
            if err.code not in PERMISSION_CODES:
                raise
            if not self.get_option("strict_permissions"):
                return _Skipped(client.region, err)  # the main thread warns
            raise AwsError(
                err.operation,
                err.code,
                f"region {client.region} is denied or not opted in: {err.message}; "
                "set strict_permissions: false to skip such regions",
                err.status,
            ) from None

    def _all_regions(self, params, session):
        client = build_client(params, region=params.get("region") or DEFAULT_REGION, session=session)
        return sorted(r["RegionName"] for r in client.call("describe_regions").get("Regions", ()))

    def _assume_role(self, params, session):
        sts = build_client(params, service="sts", region=params.get("region") or DEFAULT_REGION, session=session)
        creds = sts.call(
            "assume_role", RoleArn=self.get_option("assume_role_arn"), RoleSessionName="bakery-ec2-inventory"
        )["Credentials"]
        return dict(
            params,
            profile=None,
            access_key=creds["AccessKeyId"],
            secret_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
        )

    # --- inventory ---

    def _populate(self, hosts, preferences, host_preference, rename=None, all_names=False):
        """Add the hosts; names and ``ansible_host`` come from the instance's fields, as they are cached.

        ``rename`` (hostvars_prefix/suffix) applies to the variables the host gets and constructed sees;
        with ``all_names`` (allow_duplicated_hosts) every hostname preference that gives a value is a host.
        """
        inventory = self.inventory
        strict = self.get_option("strict")
        self._prepare_constructed()
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

    def _prepare_constructed(self):
        self._use_extra = self.get_option("use_extra_vars")
        first = set(RESERVED)  # includes every Jinja and Ansible global (range, lookup, omit, ...)
        if self._use_extra:
            first.update(self._vars or ())
        self._paths = {}
        self._first_reserved = frozenset(first)
        self._group_names = {}
        self._leading_separator = self.get_option("leading_separator")

    def _path(self, expression):
        key = (type(expression), expression)
        if key not in self._paths:
            self._paths[key] = plain_path(expression, self._first_reserved)
        return self._paths[key]

    def _evaluate(self, expression, variables, full_variables, strict):
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

    def _sanitize(self, name):
        safe = self._group_names.get(name)
        if safe is None:
            safe = self._group_names[name] = self._sanitize_group_name(name)
        return safe

    def _construct(self, name, host, hostvars, strict):
        """compose, groups, keyed_groups for one host, as aws_ec2 calls Constructable's helpers."""
        inventory = self.inventory

        def inventory_vars():
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

    def _keyed_group(self, keyed, name, host, inventory_vars, strict):
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
        default_value = keyed.get("default_value", None)
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
        parent = keyed.get("parent_group", None)
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
