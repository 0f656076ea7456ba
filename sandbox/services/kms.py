"""KMS: moto's keys as they are; EBS encryption with them is EC2's side (sandbox/kms.py)."""

from __future__ import annotations

from ..errors import json_error
from .base import Answer, Request, Service


class Kms(Service):
    name = "kms"
    target_prefix = "TrentService."

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return json_error(code, message, status)
