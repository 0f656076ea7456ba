from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._targets import (
    HealthTimeout,
    TargetGroups,
    TargetHopeless,
    check_target_group_refs,
    find_target_groups,
)

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{}/0123456789abcdef"


@pytest.fixture
def elb(stubbed_clients):
    return stubbed_clients(service="elbv2")


def group(name, target_type="instance"):
    return {"TargetGroupArn": ARN.format(name), "TargetGroupName": name, "TargetType": target_type}


def health(stubber, name, **states):
    stubber.add_response(
        "describe_target_health",
        {
            "TargetHealthDescriptions": [
                {"Target": {"Id": iid.replace("_", "-")}, "TargetHealth": {"State": state}}
                for iid, state in states.items()
            ]
        },
        {"TargetGroupArn": ARN.format(name)},
    )


def test_refs_are_names_or_target_group_arns():
    assert check_target_group_refs(["web", "web-tg-1", ARN.format("web")]) is None
    assert "'-web'" in check_target_group_refs(["-web"])
    assert "'a" in check_target_group_refs(["a" * 33])


def test_groups_found_by_name_and_arn_once_each_and_only_of_type_instance(elb):
    client, stubber = elb
    stubber.add_response("describe_target_groups", {"TargetGroups": [group("web")]}, {"Names": ["web"]})
    stubber.add_response(
        "describe_target_groups", {"TargetGroups": [group("web")]}, {"TargetGroupArns": [ARN.format("web")]}
    )
    assert [g["TargetGroupName"] for g in find_target_groups(client, ["web", ARN.format("web")])] == ["web"]
    stubber.add_response(
        "describe_target_groups", {"TargetGroups": [group("lambdas", "lambda")]}, {"Names": ["lambdas"]}
    )
    with pytest.raises(ValueError, match="target_groups: 'lambdas' has target type 'lambda'"):
        find_target_groups(client, ["lambdas"])


def test_healthy_means_healthy_in_every_group(elb, slept):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [group("web"), group("api")])
    health(stubber, "web", i_00000001="healthy")
    health(stubber, "api", i_00000001="initial")
    health(stubber, "web", i_00000001="healthy")
    health(stubber, "api", i_00000001="healthy")
    groups.wait_healthy(["i-00000001"], 60)
    assert slept == [1.0]


def test_health_is_asked_once_a_second(elb, slept):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [group("web")])
    for state in ["initial"] * 4 + ["healthy"]:
        health(stubber, "web", i_00000001=state)
    groups.wait_healthy(["i-00000001"], 60)
    assert slept == [1.0, 1.0, 1.0, 1.0]


def test_health_timeout_names_each_group_where_it_is_not_healthy(elb):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [group("web"), group("api")])
    health(stubber, "web", i_00000001="healthy")
    health(stubber, "api")
    with pytest.raises(HealthTimeout) as caught:
        groups.wait_healthy(["i-00000001"], 0)
    assert str(caught.value) == "not healthy after 0s: i-00000001 unregistered in api"


def test_register_only_where_missing_or_draining_and_deregister_only_where_active(elb):
    client, stubber = elb
    changes = Changes(False, client)
    groups = TargetGroups(changes, [group("web"), group("api")])
    health(stubber, "web", i_00000001="healthy", i_00000002="draining")
    health(stubber, "api", i_00000001="healthy", i_00000002="healthy")
    stubber.add_response(
        "register_targets", {}, {"TargetGroupArn": ARN.format("web"), "Targets": [{"Id": "i-00000002"}]}
    )
    assert groups.register(["i-00000001", "i-00000002"]) == ["i-00000002"]
    health(stubber, "web", i_00000002="draining")
    health(stubber, "api", i_00000002="healthy")
    stubber.add_response(
        "deregister_targets", {}, {"TargetGroupArn": ARN.format("api"), "Targets": [{"Id": "i-00000002"}]}
    )
    # i-00000002 is to be waited for (draining in web, deregistered from api); i-00000001 is in neither.
    assert groups.deregister(["i-00000001", "i-00000002"]) == ["i-00000002"]
    assert changes.actions == ["register i-00000002 in target group web", "deregister i-00000002 from target group api"]


def test_a_new_instance_elb_does_not_know_yet_is_registered_again_after_a_while(elb, slept):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [group("web")])
    health(stubber, "web")
    stubber.add_client_error("register_targets", "InvalidTarget", "The following targets are not in a running state")
    stubber.add_response(
        "register_targets", {}, {"TargetGroupArn": ARN.format("web"), "Targets": [{"Id": "i-00000001"}]}
    )
    assert groups.register(["i-00000001"], new=True) == ["i-00000001"]
    assert len(slept) == 1


def test_an_invalid_target_of_an_older_instance_fails_at_once(elb):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [group("web")])
    health(stubber, "web")
    stubber.add_client_error("register_targets", "InvalidTarget", "The following targets are not in the VPC")
    with pytest.raises(AwsError, match="RegisterTargets: InvalidTarget"):
        groups.register(["i-00000001"])


LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web-lb/0123456789abcdef"


def balancer(stubber, *zones):
    stubber.add_response(
        "describe_load_balancers",
        {"LoadBalancers": [{"LoadBalancerArn": LB, "AvailabilityZones": [{"ZoneName": z} for z in zones]}]},
        {"LoadBalancerArns": [LB]},
    )


@pytest.mark.parametrize(
    ("reason", "description"),
    [("Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"),
     ("Target.InvalidState", "Target is in the stopped state"), ("Elb.InternalError", "")],
)  # fmt: skip
def test_a_target_elb_will_never_route_to_fails_the_wait_at_once(elb, slept, reason, description):
    """unused (Target.NotInUse: a zone the load balancer does not enable) and the like end the wait on the first
    read, in one line naming the instance, its zone and the load balancer's zones; not after wait_timeout."""
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [dict(group("web"), LoadBalancerArns=[LB])])
    health_entry = {"State": "unused", "Reason": reason}
    if description:
        health_entry["Description"] = description
    stubber.add_response(
        "describe_target_health",
        {"TargetHealthDescriptions": [{"Target": {"Id": "i-00000001"}, "TargetHealth": health_entry}]},
        {"TargetGroupArn": ARN.format("web")},
    )
    balancer(stubber, "us-east-1b", "us-east-1a")
    with pytest.raises(TargetHopeless) as caught:
        groups.wait_healthy(["i-00000001"], 600, {"i-00000001": "us-east-1c"})
    message = str(caught.value)
    assert message.startswith(f"i-00000001 in us-east-1c is unused ({reason}")
    assert message.endswith(
        "in target group web, whose load balancers enable us-east-1a, us-east-1b; it will not turn healthy"
    )
    assert "\n" not in message and slept == []
    stubber.assert_no_pending_responses()


def test_unhealthy_draining_counts_as_draining(elb):
    """A target deregistered while unhealthy reads unhealthy.draining: registered again, never deregistered twice."""
    client, stubber = elb
    changes = Changes(False, client)
    groups = TargetGroups(changes, [group("web")])
    health(stubber, "web", i_00000001="unhealthy.draining")
    stubber.add_response(
        "register_targets", {}, {"TargetGroupArn": ARN.format("web"), "Targets": [{"Id": "i-00000001"}]}
    )
    assert groups.register(["i-00000001"]) == ["i-00000001"]
    health(stubber, "web", i_00000001="unhealthy.draining")
    assert groups.deregister(["i-00000001"]) == ["i-00000001"]
    assert changes.actions == ["register i-00000001 in target group web"]


def test_enabled_zones_are_those_every_groups_load_balancers_enable(elb):
    client, stubber = elb
    groups = TargetGroups(Changes(False, client), [dict(group("web"), LoadBalancerArns=[LB]), group("spare")])
    balancer(stubber, "us-east-1a", "us-east-1b")
    assert groups.enabled_zones() == {"us-east-1a", "us-east-1b"}
    assert TargetGroups(Changes(False, client), [group("spare")]).enabled_zones() is None
