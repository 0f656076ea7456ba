# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  tags:
    description:
      - Tags as a dictionary of key and value.
      - When not set, tags are left alone.
      - Keys starting with C(aws:) are reserved by AWS and refused.
    type: dict
    aliases: [resource_tags]
  purge_tags:
    description:
      - Whether tags not listed in O(tags) are removed.
      - Has no effect when O(tags) is not set.
    type: bool
    default: true
"""
