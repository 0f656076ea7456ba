# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors every part reports: an AWS call that failed for good, a wait that ran out, a task's own failure.

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

_T = TypeVar("_T")


class AwsError(Exception):
    """An AWS call that failed for good (after retries), with EC2's error code and message."""

    def __init__(self, operation: str, code: str, message: str, status: int | None = None) -> None:
        self.operation = operation
        self.code = code
        self.message = one_line(message)
        self.status = status
        super().__init__(f"{operation}: {code}: {self.message}")

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "code": self.code, "message": self.message, "http_status": self.status}


class WaitTimeout(Exception):
    """A wait ran out of time; ``last`` describes the state seen last."""

    def __init__(self, what: str, timeout: float, last: Any) -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"timed out after {timeout}s waiting for {what}; last seen: {last}")


class TaskError(Exception):
    """What a task found wrong (bad input EC2 revealed, a conflict) in one line; the module adds what was done."""


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def not_found(call: Callable[[], _T], codes: Collection[str]) -> _T | None:
    """Run ``call()``; return None when AWS answers with one of ``codes`` (what is not there, or gone)."""
    try:
        return call()
    except AwsError as err:
        if err.code in codes:
            return None
        raise
