# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The webserver role ships the app as one archive: files/pack_app.py (on the controller) and files/unpack_app.sh
(on the host) of roles/webserver, run as the role runs them (Python with the source directory; sh with the code
directory, the SHA-256 and install/check, the base64 archive on standard input)."""

from __future__ import annotations

import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROLE = Path(__file__).resolve().parents[3] / "roles" / "webserver"
PACK = ROLE / "files" / "pack_app.py"
UNPACK = (ROLE / "files" / "unpack_app.sh").read_text()


def pack(app: Path) -> tuple[str, str]:
    out = subprocess.run([sys.executable, str(PACK), str(app)], capture_output=True, text=True, check=True)
    sha, b64 = out.stdout.split()
    return sha, b64


def unpack(code: Path, archive: tuple[str, str], mode: str = "install") -> subprocess.CompletedProcess:
    sha, b64 = archive
    argv = ["/bin/sh", "-c", UNPACK, "unpack", str(code), sha, mode]
    return subprocess.run(argv, input=b64, capture_output=True, text=True, check=False)


@pytest.fixture
def app(tmp_path):
    """A copy of the role's app directory that a test may change."""
    copy = tmp_path / "app"
    shutil.copytree(ROLE / "files" / "app", copy)
    return copy


def files(code: Path) -> set[str]:
    """The installed files, bytecode aside."""
    return {str(p.relative_to(code)) for p in (code / "employee_directory").rglob("*") if "__pycache__" not in p.parts}


def bytecode_paths(code: Path) -> dict[str, str]:
    """Each installed module: the source path its bytecode names (absent when it has none)."""
    found = {}
    for source in (code / "employee_directory").rglob("*.py"):
        # The host's python3 compiled it: its own tag (cpython-311, ...), whatever runs this test.
        for compiled in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            found[str(source)] = marshal.loads(compiled.read_bytes()[16:]).co_filename
    return found


def test_pack_gives_the_same_bytes_for_the_same_files(app):
    first = pack(app)
    (app / "employee_directory" / "__pycache__").mkdir()
    (app / "employee_directory" / "__pycache__" / "web.cpython-311.pyc").write_bytes(b"\0")
    (app / "employee_directory" / "web.py").touch()  # a new mtime, same content
    assert pack(app) == first
    assert pack(ROLE / "files" / "app") == first
    (app / "employee_directory" / "web.py").write_text("# changed\n")
    assert pack(app)[0] != first[0]


def test_unpack_installs_then_changes_nothing(app, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    archive = pack(app)
    assert unpack(code, archive, "check").returncode == 3
    assert not (code / "employee_directory").exists()
    first = unpack(code, archive)
    assert first.returncode == 3, first.stderr
    assert files(code) == {
        str(p.relative_to(app)) for p in (app / "employee_directory").rglob("*") if "__pycache__" not in p.parts
    }
    assert (code / ".archive-sha256").read_text().strip() == archive[0]
    # Every module compiled at install, naming its final path (not the directory it was unpacked in).
    modules = {str(p) for p in (code / "employee_directory").rglob("*.py")}
    assert modules and bytecode_paths(code) == {m: m for m in modules}
    assert (code / "employee_directory" / "web.py").stat().st_mode & 0o777 == 0o644
    assert (code / "employee_directory" / "static").stat().st_mode & 0o777 == 0o755
    assert unpack(code, archive).returncode == 0
    assert unpack(code, archive, "check").returncode == 0
    assert sorted(p.name for p in code.iterdir()) == [".archive-sha256", "employee_directory"]


def test_a_new_archive_replaces_the_code_and_removes_stale_files(app, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    assert unpack(code, pack(app)).returncode == 3
    (app / "employee_directory" / "images.py").unlink()
    newer = pack(app)
    check = unpack(code, newer, "check")
    assert check.returncode == 3
    assert (code / "employee_directory" / "images.py").exists(), "check mode changed the code"
    assert unpack(code, newer).returncode == 3
    assert not (code / "employee_directory" / "images.py").exists()
    assert (code / "employee_directory" / "web.py").exists()


def test_a_damaged_archive_fails_and_leaves_the_code_alone(app, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    good = pack(app)
    assert unpack(code, good).returncode == 3
    (app / "employee_directory" / "web.py").write_text("# changed\n")
    sha, b64 = pack(app)
    damaged = unpack(code, (sha, b64[: len(b64) // 2]))
    assert damaged.returncode not in (0, 3)
    assert (code / ".archive-sha256").read_text().strip() == good[0]
    assert "# changed" not in (code / "employee_directory" / "web.py").read_text()
    assert sorted(p.name for p in code.iterdir()) == [".archive-sha256", "employee_directory"]
