"""Let ``make docs`` build offline: a Sphinx inventory of the few Ansible docs targets the generated pages use.

antsibull-docs' Sphinx configuration links to docs.ansible.com through intersphinx, which downloads that
site's inventory at build time. This writes a small inventory with the targets the collection's pages
refer to (each pointing at its page on docs.ansible.com) and makes conf.py use it instead of downloading.
A target that is missing here shows up as a build warning, which ``make docs`` treats as an error: add it.

Usage: python docs/offline_intersphinx.py DOCS_DIR   (the directory antsibull-docs sphinx-init made)
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
CONFIG_PAGE = "reference_appendices/config.html"

# (name, domain:role, page#anchor, title) as docs.ansible.com's own inventory has them.
TARGETS = [
    ("common_return_values", "std:label", "reference_appendices/common_return_values.html#common-return-values",
     "Return Values"),
    ("ansible_configuration_settings", "std:label", CONFIG_PAGE + "#ansible-configuration-settings",
     "Ansible Configuration Settings"),
] + [
    (f"ansible_collections.ansible.builtin.{name}_module", "std:label",
     f"collections/ansible/builtin/{name}_module.html#ansible-collections-ansible-builtin-{name}-module",
     f"ansible.builtin.{name} module")
    for name in ("copy", "file", "template", "user")
] + [
    (name, "std:envvar", f"{CONFIG_PAGE}#envvar-{name}", "-")
    for name in ("ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION", "ANSIBLE_CACHE_PLUGIN_PREFIX",
                 "ANSIBLE_CACHE_PLUGIN_TIMEOUT")
]  # fmt: skip


def inventory_bytes(targets):
    """Sphinx inventory format version 2: four header lines, then zlib-compressed entries."""
    header = "# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
    header += "# The remainder of this file is compressed using zlib.\n"
    entries = "".join(f"{name} {role} -1 {uri} {title}\n" for name, role, uri, title in targets)
    return header.encode() + zlib.compress(entries.encode())


def main(docs_dir):
    docs = Path(docs_dir)
    (docs / "ansible_devel.inv").write_bytes(inventory_bytes(TARGETS))
    with (docs / "conf.py").open("a") as conf:
        conf.write(
            "\n# Written by docs/offline_intersphinx.py: no download at build time.\n"
            f"intersphinx_mapping = {{'ansible_devel': ({ANSIBLE_DOCS!r}, '../ansible_devel.inv')}}\n"
        )


if __name__ == "__main__":
    main(sys.argv[1])
