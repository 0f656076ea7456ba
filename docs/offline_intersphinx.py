"""What ``make docs`` adds to the conf.py that antsibull-docs sphinx-init wrote.

- Offline: antsibull-docs' Sphinx configuration links to docs.ansible.com through intersphinx, which downloads
  that site's inventory at build time. This writes a small inventory with the targets the collection's pages
  refer to (each pointing at its page on docs.ansible.com) and makes conf.py use it instead of downloading.
  A target that is missing here shows up as a build warning, which ``make docs`` treats as an error: add it.
- Markdown: the site's guides include the project's own Markdown pages (the sandbox, AWX) through MyST, with
  the directive ``bakery-markdown``.
- No link without a target: galaxy.yml must name a repository (ansible-lint's production profile) and names a
  host under .invalid until the project has a public address; antsibull-docs turns it into a "Repository
  (Sources)" button on every page. Links to such hosts are dropped from the pages.

Usage: python docs/offline_intersphinx.py DOCS_DIR   (the directory antsibull-docs sphinx-init made)
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from urllib.parse import urlsplit

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
CONFIG_PAGE = "reference_appendices/config.html"
REPOSITORY = Path(__file__).resolve().parent.parent

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
    (f"ansible_collections.amazon.aws.{name}_module", "std:label",
     f"collections/amazon/aws/{name}_module.html#ansible-collections-amazon-aws-{name.replace('_', '-')}-module",
     f"amazon.aws.{name} module")
    for name in ("autoscaling_group", "autoscaling_instance_refresh")
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


def has_no_target(uri):
    """True for a link to a host under the reserved top-level domain .invalid (RFC 2606), which never resolves."""
    host = urlsplit(uri).hostname or ""
    return host == "invalid" or host.endswith(".invalid")


def drop_links_without_target(_app, doctree):
    """Sphinx doctree-read handler: remove links to hosts that never resolve, with the list item that holds one
    and a list or section left empty."""
    from docutils import nodes  # there when Sphinx runs; the rest of this file needs none

    for ref in list(doctree.findall(nodes.reference)):
        if not has_no_target(ref.get("refuri", "")):
            continue
        item = next((node for node in _ancestors(ref) if isinstance(node, nodes.list_item)), ref)
        holder = item.parent
        holder.remove(item)
        if isinstance(holder, nodes.bullet_list) and not holder.children:
            section = holder.parent
            section.remove(holder)
            # A plugin page's "Collection links" heading, with nothing left under it.
            left = (child for child in section.children if not isinstance(child, (nodes.title, nodes.comment)))
            if isinstance(section, nodes.section) and next(left, None) is None:
                section.parent.remove(section)


def markdown_directive():
    """The directive ``.. bakery-markdown:: sandbox/README.md``: a Markdown file of this repository, parsed by MyST,
    included where the directive stands. (antsibull-docs' lint checks an extra docs page alone, outside this
    repository, and would fail on a docutils include of a path it cannot see; it is told to ignore this one.)"""
    from docutils.parsers.rst.directives.misc import Include
    from myst_parser.parsers.sphinx_ import MystParser

    class Markdown(Include):
        def run(self):
            self.arguments[0] = str(REPOSITORY / self.arguments[0])
            self.options["parser"] = MystParser
            return super().run()

    return Markdown


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def main(docs_dir):
    docs = Path(docs_dir)
    (docs / "ansible_devel.inv").write_bytes(inventory_bytes(TARGETS))
    with (docs / "conf.py").open("a") as conf:
        conf.write(
            "\n# Written by docs/offline_intersphinx.py: no download at build time, Markdown guides, no link"
            " without a target.\n"
            f"intersphinx_mapping = {{'ansible_devel': ({ANSIBLE_DOCS!r}, '../ansible_devel.inv')}}\n"
            "extensions.append('myst_parser')\n"
            "myst_heading_anchors = 3\n"
            "import sys\n"
            f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
            "from offline_intersphinx import drop_links_without_target, markdown_directive\n\n\n"
            "def setup(app):\n"
            "    app.connect('doctree-read', drop_links_without_target, priority=100)  # before the table of contents\n"
            "    app.add_directive('bakery-markdown', markdown_directive())\n"
        )


if __name__ == "__main__":
    main(sys.argv[1])
