"""SSM: Debian's public parameters beside moto's own (sandbox/ssm.py); IAM on each parameter a change names."""

from __future__ import annotations

from .. import ssm
from ..errors import json_error
from .base import Answer, Request, Service, region_of

# SSM actions that name parameters (Name or Names), authorized on each parameter's ARN (the Service Authorization
# Reference, "Actions defined by AWS Systems Manager": resource type parameter); other SSM actions on "*".
PARAMETER_ACTIONS = ("PutParameter", "DeleteParameter", "DeleteParameters", "LabelParameterVersion")


class Ssm(Service):
    name = "ssm"
    target_prefix = ssm.TARGET
    audited = True

    def __init__(self, core, moto):
        super().__init__(core, moto)
        # Debian's public parameters for the base images, each naming its own region's image.
        self.public = ssm.PublicParameters(core.ec2, core.strict.foreign_image)

    def requested(self, req: Request) -> list[tuple[str, str]]:
        names = ssm.ssm_names(req.raw) if req.action in PARAMETER_ACTIONS else []
        if names:  # checked on the parameter's ARN, as on AWS
            return [(f"ssm:{req.action}", ssm.parameter_arn(region_of(req), name)) for name in names]
        return [(f"ssm:{req.action}", "*")]

    def answer(self, req: Request) -> Answer:
        return self.public.answer(req.environ, req.raw, self.moto)

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return json_error(code, message, status)

    def audit_ids(self, req: Request) -> list[str]:
        return ssm.ssm_names(req.raw)
