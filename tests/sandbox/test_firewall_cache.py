"""A host's firewall is loaded again only when its rules change (sandbox/net.py), no hosts needed.

A fleet's boot refreshes every host's firewall each time a host comes up; at 64 hosts most of those
refreshes render rules a host already has, and loading them anyway ran iptables-restore in every
namespace each time.
"""

from __future__ import annotations

import pytest

from sandbox import net

SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "172.31.0.0/16"}]}
FROM_LB = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": "sg-lb"}]}


@pytest.fixture
def loads(monkeypatch):
    """Every iptables-restore apply_firewall runs: (namespace, rules)."""
    calls = []

    def sh(*argv, **kwargs):
        calls.append((argv[3], kwargs["input"]))

    monkeypatch.setattr(net, "sh", sh)
    monkeypatch.setattr(net, "_fw_loaded", {})
    return calls


def test_the_same_rules_are_loaded_once(loads):
    for _ in range(3):
        net.apply_firewall("i-a", [SSH, FROM_LB], {"sg-lb": ["172.31.0.2"]})
    assert len(loads) == 1
    assert loads[0][0] == net.ns_name("i-a")
    assert "-A INPUT -s 172.31.0.2/32 -p tcp --dport 80 -j ACCEPT" in loads[0][1]


def test_changed_rules_or_peers_are_loaded(loads):
    net.apply_firewall("i-a", [SSH], {})
    net.apply_firewall("i-a", [SSH, FROM_LB], {"sg-lb": ["172.31.0.2"]})
    net.apply_firewall("i-a", [SSH, FROM_LB], {"sg-lb": ["172.31.0.2", "172.31.0.3"]})
    net.apply_firewall("i-b", [SSH], {})
    assert [ns for ns, _ in loads] == [net.ns_name("i-a")] * 3 + [net.ns_name("i-b")]
    assert "-s 172.31.0.3/32" in loads[2][1]


def test_a_new_or_gone_namespace_is_loaded_again(loads):
    net.apply_firewall("i-a", [SSH], {})
    net.forget_firewall("i-a")
    net.apply_firewall("i-a", [SSH], {})
    assert len(loads) == 2


def test_a_failed_load_is_not_remembered(loads, monkeypatch):
    recorder = net.sh

    def failing(*argv, **kwargs):
        raise net.SandboxError("namespace gone")

    net.apply_firewall("i-a", [SSH], {})
    monkeypatch.setattr(net, "sh", failing)
    with pytest.raises(net.SandboxError):
        net.apply_firewall("i-a", [SSH, FROM_LB], {"sg-lb": ["172.31.0.2"]})
    monkeypatch.setattr(net, "sh", recorder)
    net.apply_firewall("i-a", [SSH], {})
    assert len(loads) == 2, "after a failed load the rules are loaded again, even the ones loaded before"
