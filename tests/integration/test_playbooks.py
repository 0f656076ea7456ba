"""Each integration playbook asserts the behaviour it shows; see playbooks/*.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

PLAYBOOKS = sorted(p.stem for p in (Path(__file__).parent / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook(playbook, name):
    proc = playbook(name)
    assert "failed=0" in proc.stdout
