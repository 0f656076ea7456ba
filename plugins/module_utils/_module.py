# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the thin wrapper around AnsibleModule that every bakery.ec2 module uses.

It adds only what every AWS module needs: the connection options, a client factory,
and one way to fail (AWS error code and message, one line, never a traceback).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.bakery.ec2.plugins.module_utils._connection import (
    BOTO3_IMPORT_ERROR,
    CONNECTION_OPTIONS,
    HAS_BOTO3,
    MODULE_OPTIONS,
    build_client,
    build_session,
    connection_params_from,
    service_endpoint,
)
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, WaitTimeout, one_line

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

# Regions worked on at the same time; more would mostly queue on the clients' connection pools.
REGION_WORKERS = 10
_T = TypeVar("_T")


def connection_argument_spec() -> dict[str, dict[str, Any]]:
    spec = {}
    for name, option in {**CONNECTION_OPTIONS, **MODULE_OPTIONS}.items():
        entry = {key: value for key, value in option.items() if key != "env"}
        if "env" in option:
            entry["fallback"] = (env_fallback, option["env"])
        spec[name] = entry
    return spec


class AwsModule:
    """Wraps (does not subclass) AnsibleModule."""

    def __init__(self, argument_spec: dict[str, Any], **kwargs: Any) -> None:
        spec = connection_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._clients: dict[tuple[str, str | None], AwsClient] = {}
        # debug_botocore_endpoint_logs: every "service:Action" called, returned as resource_actions.
        self.actions: set[str] | None = set() if self.params.get("debug_botocore_endpoint_logs") else None
        self._session: Any = None
        if not HAS_BOTO3:
            self.module.fail_json(msg=missing_required_lib("boto3 and botocore"), exception=str(BOTO3_IMPORT_ERROR))

    def client(self, region: str | None = None, service: str = "ec2") -> AwsClient:
        """An :class:`AwsClient` for ``service`` (ec2, ssm or elbv2) in ``region`` (default: the task's), built once.

        Every client comes from one boto3 session, so the API models load once however many regions a task
        uses. Build the clients in one thread; they can then be used from any.
        """
        if (service, region) not in self._clients:
            params = connection_params_from(self.params.get)
            if service != "ec2":
                params["endpoint_url"] = service_endpoint(service, params.get("endpoint_url"))
            if self._session is None:
                self._session = build_session(params)
            client = build_client(params, service=service, region=region, session=self._session)
            client.actions = self.actions
            self._clients[(service, region)] = client
        return self._clients[(service, region)]

    @property
    def region(self) -> str:
        return self.client().region

    def warn(self, msg: str) -> None:
        self.module.warn(one_line(msg))

    def fail(self, msg: str, **result: Any) -> NoReturn:
        self.module.fail_json(msg=one_line(msg), **self._with_actions(result))

    def exit(self, **result: Any) -> NoReturn:
        self.module.exit_json(**self._with_actions(result))

    def _with_actions(self, result: dict[str, Any]) -> dict[str, Any]:
        if self.actions is not None:
            result["resource_actions"] = sorted(self.actions)
        return result

    def in_regions(
        self, regions: Iterable[str], work: Callable[[str], _T], services: Iterable[str] = ("ec2",)
    ) -> dict[str, _T | Exception]:
        """``{region: work(region)}`` for every region of ``regions``, at most REGION_WORKERS at a time.

        The clients of ``services`` are built first, in this thread (a boto3 session is not thread-safe); ``work``
        gets them with :meth:`client`. An :class:`AwsError` names its region; any other exception of a region is
        returned in its place, for the caller to report with the others.
        """
        regions = list(dict.fromkeys(regions))
        for region in regions:
            for service in services:
                self.client(region, service)
        with ThreadPoolExecutor(min(REGION_WORKERS, len(regions))) as pool:
            futures = {region: pool.submit(work, region) for region in regions}
        results: dict[str, _T | Exception] = {}
        for region, future in futures.items():
            try:
                results[region] = future.result()
            except AwsError as err:
                raise AwsError(err.operation, err.code, f"{region}: {err.message}", err.status) from None
            except Exception as err:  # the caller decides what a region's failure means
                results[region] = err
        return results

    def run(
        self, main: Callable[[AwsModule], object], validate: Callable[[dict[str, Any]], str | None] | None = None
    ) -> None:
        """Run ``main(self)``; every failure becomes one readable line with no traceback.

        ``validate(params)``, when given, is asked first: the one line it returns fails the task before any AWS call.
        """
        try:
            error = validate(self.params) if validate else None
            if error:
                self.fail(error)
            main(self)
        except AwsError as err:
            self.fail(str(err), error=err.as_dict())
        except WaitTimeout as err:
            self.fail(str(err), last_seen=err.last)
        except Exception as err:
            self.module.fail_json(
                msg=one_line(f"unexpected error in {self.module._name}: {type(err).__name__}: {err}"),
                exception=traceback.format_exc(),
                **self._with_actions({}),
            )
