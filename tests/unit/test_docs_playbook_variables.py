"""The docs site's page of playbook variables lists every variable the playbooks take, and no other.

A variable the playbooks take: a flow_*, rollout_* or pipeline_* key of playbooks/vars/*.yml, or one the
playbooks read with a default (``flow_hosts | default('role_source')``) that no task sets (set_fact, register).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
PAGE = ROOT / "docs" / "docsite" / "rst" / "playbook_variables.rst"
NAME = r"(?:flow|rollout|pipeline)_[a-z0-9_]+"


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def _set_by_tasks(documents):
    names = set()
    for node in (n for doc in documents for n in _walk(doc) if isinstance(n, dict)):
        facts = node.get("ansible.builtin.set_fact") or node.get("set_fact")
        if isinstance(facts, dict):
            names.update(facts)
        if isinstance(node.get("register"), str):
            names.add(node["register"])
    return names


def taken_by_playbooks():
    names = set()
    for path in sorted((PLAYBOOKS / "vars").glob("*.yml")):
        names.update(key for key in yaml.safe_load(path.read_text()) if re.fullmatch(NAME, key))
    files = sorted(PLAYBOOKS.rglob("*.yml"))
    with_default = {m for path in files for m in re.findall(rf"\b({NAME})\s*\|\s*default\(", path.read_text())}
    documents = [yaml.safe_load(path.read_text()) for path in files]
    return names | (with_default - _set_by_tasks(documents))


def documented():
    """The first column of the page's tables: ``  * - ``name``"""
    return set(re.findall(rf"^  \* - ``({NAME})``$", PAGE.read_text(), re.MULTILINE))


def test_every_variable_the_playbooks_take_is_documented():
    missing = sorted(taken_by_playbooks() - documented())
    assert not missing, f"not in {PAGE.relative_to(ROOT)}: {', '.join(missing)}"


def test_the_page_documents_no_variable_the_playbooks_do_not_take():
    stale = sorted(documented() - taken_by_playbooks())
    assert not stale, f"in {PAGE.relative_to(ROOT)} but not taken by the playbooks: {', '.join(stale)}"


def test_a_variable_set_by_a_task_is_not_taken():
    # flow_clock is read with a default and set with set_fact: the playbooks' own state, not an input.
    assert "flow_clock" not in taken_by_playbooks()
    assert "flow_hosts" in taken_by_playbooks()
