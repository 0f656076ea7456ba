# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a task changes (:class:`Changes`, the one way to change, check mode kept in one place) and waiting for a
state to be reached (:func:`wait_until`).

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient
from ansible_collections.bakery.ec2.plugins.module_utils._errors import WaitTimeout
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks

_T = TypeVar("_T")


def wait_until(
    fetch: Callable[[], _T],
    check: Callable[[_T], object],
    timeout: float,
    what: str,
    describe: Callable[[_T], Any] = repr,
    first_delay: float = 0.25,
    max_delay: float = 2.0,
    factor: float = 1.6,
    clock: Callable[[], float] | None = None,
) -> _T:
    """Poll ``fetch()`` until ``check(value)`` is true; raise :class:`WaitTimeout` with the last state seen.

    ``check`` may raise to abort the wait (a state that can no longer turn into the one wanted).
    The first poll happens at once and the delay grows from ``first_delay`` to ``max_delay``,
    so the wait ends within ``max_delay`` seconds of the state being reached, plus the poll that sees it.
    """
    clock = clock or time.monotonic
    deadline = clock() + timeout
    delay = first_delay
    while True:
        value = fetch()
        if check(value):
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(what, timeout, describe(value))
        AwsClient.sleep(min(delay, remaining))
        delay = min(max_delay, delay * factor)


class Changes:
    """What a run changes, or in check mode would change, one line each, in order; the one way to change."""

    def __init__(self, check_mode: bool, client: AwsClient | None = None) -> None:
        self.check_mode = check_mode
        self.client = client
        self.actions: list[str] = []

    def will(self, action: str) -> bool:
        """Record ``action``; return True when it is to be carried out (not in check mode)."""
        self.actions.append(action)
        return not self.check_mode

    def act(
        self, action: str, operation: str, created_codes: Collection[str] = (), **params: Any
    ) -> dict[str, Any] | None:
        """Record ``action``; outside check mode, make the call ``operation`` and return its answer.

        ``created_codes``: NotFound codes of resources this run created that the call names; they are
        retried for a while (EC2 is eventually consistent). ``InstanceIds`` go in chunks of 200.
        """
        if not self.will(action):
            return None
        if "InstanceIds" in params:
            for part in chunks(params.pop("InstanceIds")):
                self.client.call_created(operation, created_codes, InstanceIds=part, **params)
            return None
        return self.client.call_created(operation, created_codes, **params)
