"""ec2_launch's firewall: rules as atoms, the managed security group, security groups by ID or name."""

from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _firewall
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import TaskError
from ec2_fakes import LIVE, SG, VPC, reservations

NEW_SG = "sg-0eeeeeeeeeeeeeee0"
OTHER_SG = "sg-0aaaaaaaaaaaaaaa0"
MANAGED = [{"Key": "ManagedBy", "Value": "bakery.ec2.ec2_launch"}]
LOOKUP = {"Filters": [{"Name": "group-name", "Values": ["web"]}, {"Name": "vpc-id", "Values": [VPC]}]}
HTTP = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


def rule(ports=None, cidr=None, proto="tcp", source_group=None):
    return {"proto": proto, "ports": ports, "cidr": cidr, "source_group": source_group}


# --- rules ------------------------------------------------------------------------------------------


def test_permissions_round_trip():
    atoms = _firewall.firewall_atoms(
        [
            {"proto": "tcp", "ports": "8000-8080", "cidr": ["10.0.0.0/8", "::/0"], "source_group": None},
            {"proto": "icmp", "ports": None, "cidr": ["192.168.0.0/16"], "source_group": None},
            {"proto": "udp", "ports": 53, "cidr": None, "source_group": "sg-0123456789abcdef0"},
        ],
        "web",
    )
    assert _firewall.atoms_from_permissions(_firewall.permissions_from_atoms(atoms)) == atoms
    assert sorted(_firewall.rule_text(a) for a in atoms) == [
        "icmp from 192.168.0.0/16",
        "tcp 8000-8080 from 10.0.0.0/8",
        "tcp 8000-8080 from ::/0",
        "udp 53 from sg-0123456789abcdef0",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(443, (443, 443)), ("22", (22, 22)), (" 8000-8080 ", (8000, 8080)), (0, (0, 0)), ("65535", (65535, 65535))],
)
def test_ports_and_ranges(value, expected):
    assert _firewall.parse_ports(value, "p") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "p: True is not a port or a from-to range"),
        ("1-2-3", "p: '1-2-3' is not a port or a from-to range"),
        (-1, "p: -1 is not a port or a from-to range"),
        (70000, "p: port 70000 is out of range 0-65535"),
        ("80-90000", "p: port 90000 in '80-90000' is out of range 0-65535"),
        ("90-80", "p: '90-80' starts above where it ends"),
    ],
)
def test_bad_ports_are_named(value, message):
    with pytest.raises(ValueError) as err:
        _firewall.parse_ports(value, "p")
    assert str(err.value) == message


def test_cidrs_are_canonical_and_of_their_kind():
    assert _firewall.parse_cidr(" 2001:db8:0::/32", "c") == ("2001:db8::/32", "cidr6")
    assert _firewall.parse_cidr("10.0.0.0/8", "c") == ("10.0.0.0/8", "cidr")
    with pytest.raises(ValueError, match=r"^c: '10\.0\.0\.1/8' is not a valid CIDR"):
        _firewall.parse_cidr("10.0.0.1/8", "c")


def test_the_task_name_as_source_means_the_managed_group():
    atoms = _firewall.firewall_atoms([rule(proto="all", source_group="web")], "web")
    assert atoms == {("-1", -1, -1, "group", "web")}
    assert _firewall.permissions_from_atoms({("-1", -1, -1, "group", SG)}) == [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": SG}]}
    ]


@pytest.mark.parametrize(
    ("atoms", "open_to_world"),
    [
        ({("tcp", 22, 22, "cidr", "0.0.0.0/0")}, True),
        ({("tcp", 1, 1024, "cidr6", "::/0")}, True),
        ({("-1", -1, -1, "cidr", "0.0.0.0/0")}, True),
        ({("tcp", 22, 22, "cidr", "10.0.0.0/8")}, False),
        ({("tcp", 80, 443, "cidr", "0.0.0.0/0")}, False),
        ({("udp", 22, 22, "cidr", "0.0.0.0/0")}, False),
        ({("tcp", 22, 22, "group", "sg-1")}, False),
    ],
)
def test_ssh_open_to_the_whole_internet(atoms, open_to_world):
    assert _firewall.ssh_open_to_world(atoms) is open_to_world


# --- security groups by ID or name ------------------------------------------------------------------


def test_groups_by_id_and_name_keep_the_order_given(ec2_client):
    client, stub = ec2_client
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "VpcId": VPC}]}, {"GroupIds": [SG]}
    )
    stub.add_response(
        "describe_security_groups",
        {"SecurityGroups": [{"GroupId": OTHER_SG, "GroupName": "db-clients", "VpcId": VPC}]},
        {"Filters": [{"Name": "group-name", "Values": ["db-clients"]}, {"Name": "vpc-id", "Values": [VPC]}]},
    )
    assert _firewall.resolve_groups(client, ["db-clients", SG], VPC, "security_groups") == [OTHER_SG, SG]


def test_groups_of_another_vpc_or_by_name_without_a_vpc_are_refused(ec2_client):
    client, stub = ec2_client
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "VpcId": "vpc-0ffffffffffffffff"}]}
    )
    with pytest.raises(TaskError, match=f"^security_groups: '{SG}' is in vpc-0ffffffffffffffff, not in {VPC}$"):
        _firewall.resolve_groups(client, [SG], VPC, "security_groups")
    with pytest.raises(TaskError, match="group names need a VPC; give subnet_id or use group IDs"):
        _firewall.resolve_groups(client, ["db-clients"], None, "security_groups")
    stub.add_client_error("describe_security_groups", "InvalidGroup.NotFound", "no such group")
    with pytest.raises(TaskError, match=f"^firewall.source_group: security group '{SG}' not found in {VPC}$"):
        _firewall.resolve_groups(client, [SG], VPC, "firewall.source_group")


# --- the managed group ------------------------------------------------------------------------------


def test_a_new_group_is_created_tagged_and_given_its_rules_including_itself(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_security_groups", {"SecurityGroups": []}, LOOKUP)
    stub.add_response(
        "create_security_group",
        {"GroupId": NEW_SG},
        {
            "GroupName": "web",
            "Description": "bakery.ec2.ec2_launch firewall of web",
            "VpcId": VPC,
            "TagSpecifications": [
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": "ManagedBy", "Value": "bakery.ec2.ec2_launch"}, {"Key": "Name", "Value": "web"}],
                }
            ],
        },
    )
    # EC2 is eventually consistent: the new group may be unknown to the next call for a while.
    stub.add_client_error("authorize_security_group_ingress", "InvalidGroup.NotFound", "not yet")
    stub.add_response(
        "authorize_security_group_ingress",
        {},
        {"GroupId": NEW_SG, "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": NEW_SG}]}, HTTP]},
    )
    changes = Changes(False, client)
    firewall = _firewall.Firewall(changes, "web", VPC)
    firewall.look([rule(80, ["0.0.0.0/0"]), rule(proto="all", source_group="web")], pytest.fail)
    assert firewall.member_id == "(new group web)"
    assert firewall.before == []
    firewall.apply()
    assert firewall.group_id == firewall.member_id == NEW_SG
    assert firewall.not_found_codes == _firewall.GROUP_NOT_FOUND  # created by this run: NotFound is retried
    assert sorted(firewall.after()) == ["all from " + NEW_SG, "tcp 80 from 0.0.0.0/0"]
    assert changes.actions == [
        f"create security group web in {VPC}",
        f"authorize all from {NEW_SG}, tcp 80 from 0.0.0.0/0 on web",
    ]


def test_check_mode_plans_the_group_without_creating_it(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_security_groups", {"SecurityGroups": []}, LOOKUP)
    changes = Changes(True, client)
    firewall = _firewall.Firewall(changes, "web", VPC)
    firewall.look([rule(22, ["0.0.0.0/0"])], changes.actions.append)  # warnings collected with the changes
    firewall.apply()
    assert changes.actions == [
        "firewall: port 22 of 'web' is open to the whole internet",
        f"create security group web in {VPC}",
        "authorize tcp 22 from 0.0.0.0/0 on web",
    ]
    assert firewall.group_id is None
    assert firewall.not_found_codes == ()


def test_existing_rules_are_made_exact_revoking_first(ec2_client):
    client, stub = ec2_client
    smtp = {"IpProtocol": "tcp", "FromPort": 25, "ToPort": 25, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    group = {"GroupId": SG, "GroupName": "web", "VpcId": VPC, "Tags": MANAGED, "IpPermissions": [HTTP, smtp]}
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, LOOKUP)
    stub.add_response("revoke_security_group_ingress", {}, {"GroupId": SG, "IpPermissions": [smtp]})
    changes = Changes(False, client)
    firewall = _firewall.Firewall(changes, "web", VPC)
    firewall.look([rule("80", ["0.0.0.0/0"])], pytest.fail)
    assert sorted(firewall.before) == ["tcp 25 from 10.0.0.0/8", "tcp 80 from 0.0.0.0/0"]
    firewall.apply()
    assert changes.actions == ["revoke tcp 25 from 10.0.0.0/8 on web"]
    assert firewall.not_found_codes == ()  # not created by this run: NotFound is not retried


def test_a_group_of_that_name_not_made_by_ec2_launch_is_not_taken_over(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "GroupName": "web"}]}, LOOKUP)
    with pytest.raises(
        TaskError, match=f"security group 'web' \\({SG}\\) exists in {VPC} and was not made by ec2_launch"
    ):
        _firewall.Firewall(Changes(False, client), "web", VPC).look([rule(80, ["0.0.0.0/0"])], pytest.fail)
    with pytest.raises(TaskError, match=r"^firewall: no VPC to keep the security group in; give subnet_id$"):
        _firewall.Firewall(Changes(False, client), "web", None).look([], pytest.fail)


def test_a_duplicate_after_a_lost_create_is_adopted_when_tagged_as_ours(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_security_groups", {"SecurityGroups": []}, LOOKUP)
    stub.add_client_error("create_security_group", "ServiceUnavailable", "unavailable", 503)
    stub.add_client_error("create_security_group", "InvalidGroup.Duplicate", "The security group 'web' already exists")
    stub.add_response("describe_security_groups", {"SecurityGroups": []}, LOOKUP)  # not visible at once
    adopted = {"GroupId": NEW_SG, "GroupName": "web", "VpcId": VPC, "Tags": MANAGED, "IpPermissions": [HTTP]}
    stub.add_response("describe_security_groups", {"SecurityGroups": [adopted]}, LOOKUP)
    changes = Changes(False, client)
    firewall = _firewall.Firewall(changes, "web", VPC)
    firewall.look([rule(80, ["0.0.0.0/0"])], pytest.fail)
    firewall.apply()  # the rule is there already: nothing more to send
    assert firewall.group_id == NEW_SG
    assert changes.actions == [f"create security group web in {VPC}"]


def test_a_duplicate_permission_after_a_lost_answer_adds_only_what_is_missing(ec2_client):
    client, stub = ec2_client
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    group = {"GroupId": SG, "GroupName": "web", "VpcId": VPC, "Tags": MANAGED, "IpPermissions": []}
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, LOOKUP)
    stub.add_client_error("authorize_security_group_ingress", "InvalidPermission.Duplicate", "already exists")
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [dict(group, IpPermissions=[HTTP])]}, {"GroupIds": [SG]}
    )
    stub.add_response("authorize_security_group_ingress", {}, {"GroupId": SG, "IpPermissions": [ssh]})
    firewall = _firewall.Firewall(Changes(False, client), "web", VPC)
    firewall.look([rule(80, ["0.0.0.0/0"]), rule(22, ["10.0.0.0/8"])], pytest.fail)
    firewall.apply()


# --- state: absent ----------------------------------------------------------------------------------

ABSENT_LOOKUP = {
    "Filters": [
        {"Name": "group-name", "Values": ["web"]},
        {"Name": "tag:ManagedBy", "Values": ["bakery.ec2.ec2_launch"]},
    ]
}
GROUP_USERS = {
    "Filters": [
        {"Name": "instance.group-id", "Values": [SG]},
        {"Name": "instance-state-name", "Values": [*LIVE, "shutting-down"]},
    ]
}


def test_drop_deletes_an_unused_group_retrying_while_interfaces_let_go(ec2_client, slept):
    client, stub = ec2_client
    group = {"GroupId": SG, "GroupName": "web", "VpcId": VPC, "IpPermissions": [HTTP]}
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, ABSENT_LOOKUP)
    stub.add_response("describe_instances", {"Reservations": []}, GROUP_USERS)
    stub.add_client_error("delete_security_group", "DependencyViolation", "resource has a dependent object")
    # A retried delete whose first answer was lost: gone either way.
    stub.add_client_error("delete_security_group", "InternalError", "internal error", 500)
    stub.add_client_error("delete_security_group", "InvalidGroup.NotFound", "no such group")
    changes = Changes(False, client)
    before = _firewall.drop_firewall(changes, "web", None, False, 600, pytest.fail)
    assert before == ["tcp 80 from 0.0.0.0/0"]
    assert changes.actions == [f"delete security group web ({SG})"]
    assert slept[0] == 0.25  # the wait's first pause, after DependencyViolation


def test_drop_keeps_a_group_in_use_or_while_instances_shut_down(ec2_client):
    client, stub = ec2_client
    group = {"GroupId": SG, "GroupName": "web", "VpcId": VPC}
    warnings = []
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, ABSENT_LOOKUP)
    stub.add_response("describe_instances", reservations({"InstanceId": "i-00000009"}), GROUP_USERS)
    changes = Changes(False, client)
    assert _firewall.drop_firewall(changes, "web", None, False, 600, warnings.append) == []
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, ABSENT_LOOKUP)
    assert _firewall.drop_firewall(changes, "web", None, True, 600, warnings.append) == []
    assert changes.actions == []
    assert warnings == [
        f"security group {SG} kept: other instances still use it",
        f"security group {SG} kept: instances are still shutting down (wait=false); rerun to delete it",
    ]
    # Check mode plans the deletion without asking who uses the group (what it would terminate still runs).
    stub.add_response("describe_security_groups", {"SecurityGroups": [group]}, ABSENT_LOOKUP)
    planned = Changes(True, client)
    _firewall.drop_firewall(planned, "web", None, True, 600, warnings.append)
    assert planned.actions == [f"delete security group web ({SG})"]
