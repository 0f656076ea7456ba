"""The AWS services the sandbox answers, one module per service.

A service (a subclass of :class:`~sandbox.services.base.Service`) owns four things about its requests:

- which requests are its own (``owns``: the credential scope's service name, or the ``X-Amz-Target`` prefix of a
  JSON protocol);
- what IAM authorizes them on (``requested``: ``(action, resource ARN)`` pairs);
- what happens around moto (``refusal``: the sandbox's strictness; ``answer``: hooks before and after moto, or an
  answer of its own), and whether injected faults and the audit log apply to it;
- how it says no (``error``: EC2's XML, the Query protocol's XML, JSON or S3's XML).

Each receives the state the services share (:class:`sandbox.core.Core`: hosts, images, firewalls, load
balancers, certificates) and a way to moto; no service imports another. Adding one: a module here with its
class, and its line in :data:`SERVICES` (sandbox/README.md, "Adding a service", walks through an example).
"""

from __future__ import annotations

from . import acm, autoscaling, dynamodb, ec2, elbv2, iam, kms, s3, ssm, sts
from .base import Moto, Request, Service

# Order matters only where two could own a request: those recognised by their X-Amz-Target first.
SERVICES: list[type[Service]] = [
    ssm.Ssm,
    acm.Acm,
    kms.Kms,
    dynamodb.DynamoDb,
    ec2.Ec2,
    elbv2.Elbv2,
    autoscaling.AutoScaling,
    s3.S3,
    iam.Iam,
    sts.Sts,
]


class Registry:
    """The services, made once with the shared state; :meth:`find` names the one a request is for."""

    def __init__(self, core, moto: Moto, classes: list[type[Service]] | None = None):
        self.services = [cls(core, moto) for cls in (SERVICES if classes is None else classes)]
        self.fallback = Service(core, moto)  # moto as it is: a service the sandbox adds nothing to

    def find(self, req: Request) -> Service:
        return next((s for s in self.services if s.owns(req)), self.fallback)

    def get(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)
