"""ACM: imported certificates kept with their keys for the load balancers' HTTPS listeners (sandbox/acm.py)."""

from __future__ import annotations

from .. import acm
from ..errors import json_error
from .base import Answer, Request, Service, region_of


class Acm(Service):
    name = "acm"
    target_prefix = acm.TARGET

    def requested(self, req: Request) -> list[tuple[str, str]]:
        return acm.iam_requested(region_of(req), req.action, req.raw)

    def answer(self, req: Request) -> Answer:
        return self.core.acm.answer(req.environ, req.raw, self.moto)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return json_error(code, message, status)
