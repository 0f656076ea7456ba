# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webserver role installs its missing packages with files/apt_install.sh, run as the role runs it (/bin/sh -c
with the package names as arguments), here against an apt-get that records how it was called."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROLE = Path(__file__).resolve().parents[3] / "roles" / "webserver"
SCRIPT = (ROLE / "files" / "apt_install.sh").read_text()


@pytest.fixture
def apt_get(tmp_path):
    """A fake apt-get on PATH: writes each call's arguments (one per line) to calls/N, exits with $FAIL_ON's status
    when its arguments hold that word."""
    calls = tmp_path / "calls"
    calls.mkdir()
    fake = tmp_path / "bin" / "apt-get"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'n=$(ls {calls} | wc -l); printf "%s\\n" "$DEBIAN_FRONTEND" "$@" > {calls}/$n\n'
        'case " $* " in *" ${FAIL_ON:-none} "*) echo "E: failed on $FAIL_ON" >&2; exit 100;; esac\n'
    )
    fake.chmod(0o755)
    return fake.parent, calls


def run(apt_get, *packages, fail_on=""):
    path, calls = apt_get
    env = {"PATH": f"{path}:/usr/bin:/bin", "FAIL_ON": fail_on or "none"}
    proc = subprocess.run(["/bin/sh", "-c", SCRIPT, "apt_install", *packages], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    return proc, [(calls / str(n)).read_text().splitlines() for n in range(len(list(calls.iterdir())))]


def test_refreshes_the_lists_then_installs_only_the_packages_given_in_one_transaction(apt_get):
    proc, calls = run(apt_get, "nginx", "python3-pil")
    assert proc.returncode == 0, proc.stderr
    (update, install) = calls
    assert update[0] == install[0] == "noninteractive"
    assert update[-1] == "update"
    assert install[-3:] == ["install", "nginx", "python3-pil"]
    assert "--no-install-recommends" in install and "-y" in install


@pytest.mark.parametrize("option", ["Acquire::Languages=none", "Acquire::GzipIndexes=true", "DPkg::Lock::Timeout=120"])
def test_lists_without_translations_kept_compressed_and_the_lock_waited_for(apt_get, option):
    calls = run(apt_get, "nginx")[1]
    assert len(calls) == 2
    for call in calls:
        assert call[call.index(option) - 1] == "-o"


def test_dpkg_keeps_shipped_configuration_and_skips_syncs(apt_get):
    install = run(apt_get, "nginx")[1][-1]
    dpkg = [install[i + 1] for i, arg in enumerate(install) if arg == "-o" and install[i + 1].startswith("Dpkg::")]
    assert dpkg == ["Dpkg::Options::=--force-confdef", "Dpkg::Options::=--force-confold",
                    "Dpkg::Options::=--force-unsafe-io"]  # fmt: skip


def test_a_failed_refresh_installs_nothing_and_fails(apt_get):
    proc, calls = run(apt_get, "nginx", fail_on="update")
    assert proc.returncode == 100 and "E: failed on update" in proc.stderr
    assert len(calls) == 1
