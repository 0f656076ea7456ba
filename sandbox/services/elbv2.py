"""Elastic Load Balancing (v2): application load balancers with real bodies (HAProxy, sandbox/elb.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from .. import elb
from ..errors import SandboxError
from .base import Answer, Request, Service, answer_of


class Elbv2(Service):
    name = "elasticloadbalancing"
    takes_faults = True
    audited = True

    def owns(self, req: Request) -> bool:
        return req.service == self.name and req.region is not None and req.method == "POST"

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return answer_of(*elb.elb_error(code, message, status))

    def answer(self, req: Request) -> Answer:
        """Moto's ELBv2 with the load balancers' bodies before and after; its errors in ELB's own shape."""
        balancers, params, action, region, raw = self.core.elb, req.params, req.action, req.region, req.raw
        pre = balancers.before(action, params, region)
        if isinstance(pre, tuple):
            return answer_of(*pre)
        if isinstance(pre, dict):
            raw = urlencode(pre).encode()
        if isinstance(pre, str):  # the load balancer asked for exists with these settings: that one
            query = {"Action": "DescribeLoadBalancers", "Version": params.get("Version", "2015-12-01")}
            raw = urlencode({**query, "LoadBalancerArns.member.1": pre}).encode()
        status, headers, body = self.moto(req.environ, raw)
        if isinstance(pre, str) and status.startswith("200"):
            body = elb.Balancers.as_created(body)
        if status.startswith("200"):
            try:
                body = balancers.after(action, pre if isinstance(pre, dict) else params, region, body)
            except SandboxError as exc:
                return self.error("InternalFailure", f"sandbox: {exc}", 500)
        return status, headers, body
