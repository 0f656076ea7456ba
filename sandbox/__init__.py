"""bakery.ec2 local EC2 sandbox: moto's EC2 API on 127.0.0.1 with real hosts behind it."""

from .api import Sandbox
from .errors import SandboxError

__all__ = ["Sandbox", "SandboxError"]
