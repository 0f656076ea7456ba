# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_files on a real directory tree: what it changes, what it reports, check and diff mode, and that bad input
(or content that fails validation) leaves every path as it was."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest
from ansible_collections.bakery.ec2.plugins.modules import host_files

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="changing owners needs root")


@pytest.fixture
def run(run_module):
    def go(files, **kwargs):
        return run_module(host_files, {"files": files}, aws=False, **kwargs)

    return go


def snapshot(root):
    """Every path under root with its type, content or target, owner, group and mode."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", None)
            else:
                with open(p, "rb") as f:
                    what = ("file", f.read())
            seen[os.path.relpath(p, root)] = (*what, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return seen


def site_set(tmp_path, body="server {}\n"):
    """A set like the role's: a settings directory with a file in it, a site, its link, a default link removed."""
    (tmp_path / "available").mkdir()
    (tmp_path / "enabled").mkdir()
    (tmp_path / "enabled" / "default").symlink_to("../available/default")
    group = grp.getgrgid(os.getegid()).gr_name
    return [
        {"path": str(tmp_path / "app"), "state": "directory", "group": group, "mode": "0750"},
        {"path": str(tmp_path / "app" / "config.json"), "content": '{"a": 1}\n', "group": group, "mode": "0640"},
        {"path": str(tmp_path / "available" / "site"), "content": body, "mode": "0644"},
        {"path": str(tmp_path / "enabled" / "site"), "state": "link", "src": str(tmp_path / "available" / "site")},
        {"path": str(tmp_path / "enabled" / "default"), "state": "absent"},
    ]


def test_first_run_creates_then_a_rerun_changes_nothing(run, tmp_path):
    files = site_set(tmp_path)
    first = run(files)
    assert not first.failed
    assert first.result["changed"] is True
    assert first.result["changed_paths"] == [f["path"] for f in files]
    assert first.result["changes"][files[0]["path"]] == ["created"]
    assert first.result["changes"][files[4]["path"]] == ["removed"]
    app = tmp_path / "app"
    assert stat.S_IMODE(app.stat().st_mode) == 0o750
    assert (app / "config.json").read_text() == '{"a": 1}\n'
    assert stat.S_IMODE((app / "config.json").stat().st_mode) == 0o640
    assert os.readlink(tmp_path / "enabled" / "site") == str(tmp_path / "available" / "site")
    assert not os.path.lexists(tmp_path / "enabled" / "default")
    # Nothing else is left: no staged temporary file.
    assert sorted(os.listdir(app)) == ["config.json"]
    assert sorted(os.listdir(tmp_path / "available")) == ["site"]

    before = snapshot(tmp_path)
    again = run(files)
    assert again.result["changed"] is False
    assert again.result["changed_paths"] == []
    assert snapshot(tmp_path) == before


def test_check_mode_reports_the_changes_and_writes_nothing(run, tmp_path):
    files = site_set(tmp_path)
    before = snapshot(tmp_path)
    checked = run(files, check_mode=True)
    assert checked.result["changed"] is True
    # Even the file inside the directory that a real run would create first.
    assert checked.result["changed_paths"] == [f["path"] for f in files]
    assert snapshot(tmp_path) == before
    real = run(files)
    assert real.result["changed_paths"] == checked.result["changed_paths"]
    assert run(files, check_mode=True).result["changed"] is False


def test_only_what_changed_is_reported(run, tmp_path):
    files = site_set(tmp_path)
    run(files)
    inode = (tmp_path / "available" / "site").stat().st_ino
    files[2]["content"] = "server { listen 8080; }\n"
    files[1]["mode"] = "0600"
    result = run(files).result
    assert result["changes"] == {files[1]["path"]: ["mode"], files[2]["path"]: ["content"]}
    assert (tmp_path / "available" / "site").read_text() == "server { listen 8080; }\n"
    # Replaced by a rename, not rewritten in place: a reader never sees half a file.
    assert (tmp_path / "available" / "site").stat().st_ino != inode
    assert stat.S_IMODE((tmp_path / "app" / "config.json").stat().st_mode) == 0o600


def test_a_mode_not_given_is_kept(run, tmp_path):
    target = tmp_path / "keep"
    target.write_text("old\n")
    target.chmod(0o600)
    run([{"path": str(target), "content": "new\n"}])
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_link_is_pointed_elsewhere(run, tmp_path):
    link = tmp_path / "link"
    link.symlink_to("/old")
    result = run([{"path": str(link), "state": "link", "src": "/new"}]).result
    assert result["changes"] == {str(link): ["target"]}
    assert os.readlink(link) == "/new"


def test_diff_shows_old_and_new_content_and_attributes(run, tmp_path):
    files = site_set(tmp_path, body="server { a; }\n")
    run(files)
    files[2]["content"] = "server { b; }\n"
    files[0]["mode"] = "0755"
    result = run(files, diff=True, check_mode=True).result
    diffs = result["diff"]
    content = [d for d in diffs if d.get("after_header") == files[2]["path"]]
    assert content == [
        {"before_header": files[2]["path"], "after_header": files[2]["path"],
         "before": "server { a; }\n", "after": "server { b; }\n"}
    ]  # fmt: skip
    modes = [d for d in diffs if isinstance(d.get("before"), dict)]
    assert [(d["before"]["mode"], d["after"]["mode"]) for d in modes] == [("0750", "0755")]


def test_a_new_file_diff_is_against_nothing(run, tmp_path):
    path = str(tmp_path / "new")
    diffs = run([{"path": path, "content": "x\n", "mode": "0644"}], diff=True).result["diff"]
    assert diffs[0] == {"before_header": "/dev/null", "after_header": path, "before": "", "after": "x\n"}
    assert diffs[1]["before"] == {"path": path, "state": "absent"}
    assert diffs[1]["after"] == {"path": path, "state": "file", "mode": "0644"}


def test_failed_validation_changes_nothing(run, tmp_path):
    files = site_set(tmp_path)
    run(files)
    before = snapshot(tmp_path)
    files[1]["content"] = '{"a": 2}\n'
    files[2]["content"] = "broken\n"
    files[2]["validate"] = "/bin/sh -c 'grep -q server %s || { echo no server block in %s >&2; exit 4; }'"
    failed = run(files)
    assert failed.failed
    assert failed.result["msg"].startswith(f"files[2] ({files[2]['path']}): validate failed (exit status 4): no server")
    # The settings file listed before it was not written either, and no temporary file is left.
    assert snapshot(tmp_path) == before


def test_validation_sees_the_final_mode_and_passes(run, tmp_path):
    path = tmp_path / "secret"
    check = "/bin/sh -c 'test \"$(stat -c %a %s)\" = 600 && grep -qx k %s'"
    files = [{"path": str(path), "content": "k\n", "mode": "0600", "validate": check}]
    assert not run(files).failed
    assert path.read_text() == "k\n"


def test_a_file_in_a_directory_created_by_the_same_set_is_validated(run, tmp_path):
    files = [
        {"path": str(tmp_path / "d"), "state": "directory", "mode": "0755"},
        {"path": str(tmp_path / "d" / "f"), "content": "bad\n", "validate": "/bin/false %s"},
    ]
    failed = run(files)
    assert failed.failed
    assert "validate failed (exit status 1)" in failed.result["msg"]
    # The directory was made (it had to exist to hold the file), the file was not.
    assert os.listdir(tmp_path / "d") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "relative/x", "content": ""}, "files[0]: path 'relative/x' is not an absolute, normalised path"),
        ({"path": "/tmp/../etc/x", "content": ""}, "is not an absolute, normalised path"),
        ({"path": "/x", "state": "link"}, "files[0] (/x): state link needs src"),
        ({"path": "/x"}, "files[0] (/x): state file needs content"),
        ({"path": "/x", "state": "directory", "content": "a"}, "content does not apply to state directory"),
        ({"path": "/x", "state": "absent", "mode": "0644"}, "mode does not apply to state absent"),
        ({"path": "/x", "content": "", "mode": 416}, "mode 416 is a number; quote the octal mode"),
        ({"path": "/x", "content": "", "mode": "0999"}, "mode '0999' is not an octal mode"),
        ({"path": "/x", "content": "", "validate": "true"}, "validate 'true' has no %s"),
    ],
)
def test_bad_input_fails_with_one_line_naming_it(run, entry, message):
    failed = run([entry])
    assert failed.failed
    assert message in failed.result["msg"]
    assert "\n" not in failed.result["msg"]


def test_bad_input_anywhere_changes_nothing(run, tmp_path):
    files = site_set(tmp_path)
    before = snapshot(tmp_path)
    bad = [*files, {"path": str(tmp_path / "nowhere" / "x"), "content": "x"}]
    failed = run(bad)
    assert failed.result["msg"] == f"files[5] ({tmp_path}/nowhere/x): its directory {tmp_path}/nowhere does not exist"
    assert snapshot(tmp_path) == before
    twice = run([*files, files[0]])
    assert twice.result["msg"] == f"files[5] ({files[0]['path']}): the path is listed twice"
    assert snapshot(tmp_path) == before


def test_a_path_of_another_type_is_not_replaced(run, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        ({"path": str(tmp_path / "dir"), "content": "x"}, "is a directory, not a file; remove it first"),
        ({"path": str(tmp_path / "file"), "state": "link", "src": "/x"}, "is a file, not a link"),
        ({"path": str(tmp_path / "file"), "state": "directory"}, "is a file, not a directory"),
        ({"path": str(tmp_path / "full"), "state": "absent"}, "is a directory that is not empty"),
    ]
    for entry, message in cases:
        failed = run([entry])
        assert failed.failed and message in failed.result["msg"], entry
    assert (tmp_path / "full" / "x").exists()


def test_an_empty_directory_is_removed(run, tmp_path):
    (tmp_path / "empty").mkdir()
    assert run([{"path": str(tmp_path / "empty"), "state": "absent"}]).result["changed"] is True
    assert not (tmp_path / "empty").exists()
    assert run([{"path": str(tmp_path / "empty"), "state": "absent"}]).result["changed"] is False


def test_an_unknown_group_fails_a_real_run_and_is_a_change_in_check_mode(run, tmp_path):
    entry = {"path": str(tmp_path / "f"), "content": "x", "group": "no-such-group-bakery"}
    failed = run([entry])
    assert failed.result["msg"] == f"files[0] ({tmp_path}/f): group 'no-such-group-bakery' does not exist on the host"
    assert not (tmp_path / "f").exists()
    (tmp_path / "f").write_text("x")
    # In check mode an earlier task (ansible.builtin.group) would have created it: the file would change group.
    assert run([entry], check_mode=True).result["changes"] == {entry["path"]: ["group"]}


@root_only
def test_owner_and_group_are_set_by_name_and_number(run, tmp_path):
    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "owned"
    entry = {"path": str(target), "content": "x", "owner": "nobody", "group": str(nobody.pw_gid), "mode": "0640"}
    assert run([entry]).result["changes"] == {str(target): ["created"]}
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert run([entry]).result["changed"] is False
    os.chown(target, 0, 0)
    assert run([entry]).result["changes"] == {str(target): ["owner", "group"]}
    assert (target.stat().st_uid, target.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
