"""Auto Scaling: a launch configuration must name an image the region has (sandbox/image_lifecycle.py)."""

from __future__ import annotations

from ..errors import query_error
from .base import Answer, Request, Service, answer_of, region_of

XMLNS = "https://autoscaling.amazonaws.com/doc/2011-01-01/"


class AutoScaling(Service):
    name = "autoscaling"

    def answer(self, req: Request) -> Answer:
        if req.action == "CreateLaunchConfiguration":
            message = self.core.lifecycle.launch_configuration_refusal(req.params, region_of(req))
            if message:
                return self.error("ValidationError", message)
        return self.moto(req.environ, req.raw)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return answer_of(*query_error(code, message, status, XMLNS))
