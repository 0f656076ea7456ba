# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mitogen's linear strategy under the collection's name, so that a play can choose it by name alone."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Ansible's linear strategy with Mitogen's persistent interpreters on the hosts
version_added: 0.3.0
description:
  - Mitogen's C(mitogen_linear) strategy, found by its collection name, with no C(strategy_plugins) path to
    configure on the controller, an AWX execution environment included. Tasks run in the order of
    C(ansible.builtin.linear).
  - Mitogen keeps one Python interpreter per host over one SSH connection for the whole play and sends each module
    to it, instead of a new SSH session and a new interpreter that unpacks and compiles the module for every
    task. The flow uses it for C(configure.yml) when C(flow_mitogen) is true.
  - ansible-core prints a deprecation warning for every strategy that is not C(ansible.builtin)'s (third-party
    strategies have no compatibility guarantee). It is not hidden; it names what a future ansible-core may remove.
  - Without the C(mitogen) package on the controller the play fails at its start with one line that says so.
requirements:
  - mitogen 0.3.54 on the controller (C(requirements-dev.txt) pins it)
author:
  - bakery.ec2 maintainers (@bakery-ec2)
notes:
  - Mitogen's own documentation lists what it does not support; the role C(bakery.ec2.webserver) passes its tests
    with it (become, check mode, diff, M(bakery.ec2.host_files)).
"""

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as exc:
    MITOGEN_MISSING = str(exc)
else:
    MITOGEN_MISSING = None


if MITOGEN_MISSING is None:
    # Mitogen's mixin over the linear strategy as its loader knows it (one class of it in memory, as Mitogen's
    # own mitogen_linear plugin does).
    class StrategyModule(
        ansible_mitogen.strategy.StrategyMixin,
        ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True),
    ):
        pass

else:

    class StrategyModule(LinearStrategy):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AnsibleError(
                f"strategy bakery.ec2.mitogen_linear needs the mitogen package on the controller "
                f"(pip install mitogen==0.3.54), or flow_mitogen: false: {MITOGEN_MISSING}"
            )
