# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bakery.ec2.instances: one EC2 instance -> its host variables (private; names may change in any release).

Two ways in, with the same result (the unit tests prove it): ``instance_hostvars()`` turns an instance as
botocore returns it into host variables, and ``PageParser`` turns a raw DescribeInstances XML page straight
into them, much faster than botocore's generic parser followed by ``instance_hostvars()``.

Names are amazon.aws's snake_case ones, tags are ``ec2_tags`` (a dict), and any top-level name that Ansible
reserves gets the prefix ``ec2_``.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from ansible.vars.reserved import get_reserved_names
from ansible_collections.bakery.ec2.plugins.module_utils._tags import tags_to_dict

try:
    from botocore.utils import parse_timestamp
except ImportError:  # pragma: no cover - the plugin reports missing botocore
    parse_timestamp = None

RESERVED = frozenset(get_reserved_names())
# CamelCase API name -> snake_case host variable name, filled once per name (no regex per key).
_SNAKE = {}
_FIRST = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
# Strings up to this length are shared between hosts (zones, types, VPC and subnet IDs, tag values).
_SHARED_LEN = 64


def snake_name(name: str) -> str:
    """``PrivateIpAddress`` -> ``private_ip_address``, as amazon.aws names it; memoised in a plain dict."""
    out = _SNAKE.get(name)
    if out is None:
        out = _SNAKE[name] = _ACRONYM.sub(r"\1_\2", _FIRST.sub(r"\1_\2", name)).lower()
    return out


def _snake_value(value: Any, strings: dict[str, str]) -> Any:
    kind = type(value)
    if kind is str:
        return strings.setdefault(value, value) if len(value) <= _SHARED_LEN else value
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


def instance_hostvars(
    instance: dict[str, Any],
    reservation: dict[str, Any] | None = None,
    strings: dict[str, str] | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """One DescribeInstances instance (with its reservation) -> host variables.

    ``placement.region`` is added, as amazon.aws does: the ``region`` that was queried (a Local or Wavelength
    zone's name does not end in a letter after it).
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


def set_region(hostvars: dict[str, Any], region: str) -> None:
    """``placement.region`` of one host: the region its instance was listed in."""
    placement = hostvars.get("placement")
    if isinstance(placement, dict):
        placement["region"] = region
    else:
        hostvars["placement"] = {"region": region}


# --- DescribeInstances pages straight to host variables ---------------------------------------------
#
# botocore's generic XML parser builds every page as CamelCase dicts from the API model, at about 2 ms per
# instance (more than the whole rest of the inventory). Pages are parsed here instead, with a schema compiled
# once from the same API model: each member is ``(variable, kind, payload)``, the payload of a structure the
# members of its XML children, of a list the ``(kind, payload)`` of its items.

HOSTVARS_KEY = "BakeryHostVars"  # where the hook leaves a page's host variables in the response
_XMLNS = re.compile(rb"\sxmlns=\"[^\"]*\"")
_STR, _STRUCT, _LIST, _BOOL, _INT, _FLOAT, _TIME, _TAGS = range(8)
_KINDS = {"boolean": _BOOL, "integer": _INT, "long": _INT, "float": _FLOAT, "double": _FLOAT, "timestamp": _TIME}


def _compile_shape(shape: Any, memo: dict[tuple[str, bool], tuple[int, Any]], top: bool = False) -> tuple[int, Any]:
    """API shape -> ``(kind, payload)``; a structure's payload is ``{xml_name: (variable, kind, payload)}``."""
    if shape.type_name == "structure":
        key = (shape.name, top)
        if key in memo:
            return memo[key]
        members = {}
        spec = memo[key] = (_STRUCT, members)
        for member_name, member in shape.members.items():
            var = snake_name(member_name)
            if top and var in RESERVED:
                var = "ec2_" + var
            xml_name = member.serialization.get("name") or member_name
            members[xml_name] = (var, *_compile_shape(member, memo))
        return spec
    if shape.type_name == "list":
        return (_LIST, _compile_shape(shape.member, memo))
    return (_KINDS.get(shape.type_name, _STR), None)


class PageParser:
    """Parses DescribeInstances XML pages into ``(host variables, next token)`` with a compiled schema.

    ``strings`` is shared by every page (and thread) of one inventory, so that equal short strings are one object.
    """

    def __init__(self, service_model: Any, strings: dict[str, str]) -> None:
        output = service_model.operation_model("DescribeInstances").output_shape
        reservation = output.members["Reservations"].member
        instance = reservation.members["Instances"].member
        self.instance = dict(_compile_shape(instance, {}, top=True)[1])
        self.instance[instance.members["Tags"].serialization.get("name", "Tags")] = ("ec2_tags", _TAGS, None)
        self.strings = strings
        self.times: dict[str, str] = {}
        # Where the reservation fields sit in the XML, and the instances inside a reservation.
        self.reservation_fields = {
            reservation.members[name].serialization.get("name", name): snake_name(name)
            for name in ("OwnerId", "RequesterId", "ReservationId")
        }
        self.instances_tag = reservation.members["Instances"].serialization.get("name", "Instances")
        self.token_tag = output.members["NextToken"].serialization.get("name", "NextToken")
        self.reservations_tag = output.members["Reservations"].serialization.get("name", "Reservations")

    def hook(self, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_kwargs: Any) -> None:
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

    def parse(self, body: bytes) -> tuple[list[dict[str, Any]], str | None]:
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

    def _reservation(self, node: ElementTree.Element, hosts: list[dict[str, Any]]) -> None:
        fields = {}
        instances = ()
        strings = self.strings
        for child in node:
            tag = child.tag
            if tag == self.instances_tag:
                instances = child
            elif tag in self.reservation_fields and child.text:
                fields[self.reservation_fields[tag]] = strings.setdefault(child.text, child.text)
        for item in instances:
            hostvars = self._structure(item, self.instance)
            if "ec2_tags" not in hostvars:
                hostvars["ec2_tags"] = {}
            hostvars.update(fields)
            hosts.append(hostvars)

    def _structure(self, node: ElementTree.Element, members: dict[str, tuple[str, int, Any]]) -> dict[str, Any]:
        # The hot loop of the inventory (about 120 elements per instance): the commonest kinds inline.
        out = {}
        strings = self.strings
        for child in node:
            member = members.get(child.tag)
            if member is None:
                continue  # not in the API model: botocore ignores it too
            var, kind, payload = member
            if kind == _STR:
                text = child.text or ""
                out[var] = strings.setdefault(text, text) if len(text) <= _SHARED_LEN else text
            elif kind == _STRUCT:
                out[var] = self._structure(child, payload)
            elif kind == _BOOL:
                out[var] = child.text == "true"
            elif kind == _LIST:
                item_kind, item_payload = payload
                if item_kind == _STRUCT:
                    out[var] = [self._structure(item, item_payload) for item in child]
                else:
                    out[var] = [self._value(item, item_kind, item_payload) for item in child]
            else:
                out[var] = self._value(child, kind, payload)
        return out

    def _value(self, node: ElementTree.Element, kind: int, payload: Any) -> Any:
        if kind == _STRUCT:
            return self._structure(node, payload)
        if kind == _LIST:
            return [self._value(item, *payload) for item in node]
        if kind == _TAGS:
            return self._tags(node)
        text = node.text or ""
        if kind == _BOOL:
            return text == "true"
        if kind == _INT:
            return int(text)
        if kind == _FLOAT:
            return float(text)
        if kind == _TIME:
            stamp = self.times.get(text)
            if stamp is None:
                stamp = self.times[text] = parse_timestamp(text).isoformat()
            return stamp
        return self.strings.setdefault(text, text) if len(text) <= _SHARED_LEN else text

    def _tags(self, node: ElementTree.Element) -> dict[str, str]:
        tags = {}
        strings = self.strings
        for item in node:
            key = value = ""
            for field in item:
                if field.tag == "key":
                    key = field.text or ""
                elif field.tag == "value":
                    value = field.text or ""
            tags[key] = strings.setdefault(value, value) if len(value) <= _SHARED_LEN else value
        return tags
