# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to bakery.ec2: a set of files, directories and links put on a host in one module run.

The work happens in three passes, so that bad input changes nothing: ``plan()`` says what each entry must change
(only reads); ``stage()`` writes each new file's content to a hidden temporary file beside it and validates it
(nothing a reader of the paths can see); ``commit()`` then makes the changes in order: renames over the old
files, creates directories and links, sets owners and modes, removes what must go. A file whose directory is
created by an earlier entry of the same set is staged when that directory exists, during ``commit()``.

Nothing here knows about AnsibleModule: the module passes a ``run_command`` callable for validation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import os
import pwd
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

STATES = ("file", "directory", "link", "absent")

# A diff shows text content; a file that is not UTF-8 text, or is larger than this, is shown by its size.
DIFF_MAX_BYTES = 64 * 1024


class HostFilesError(Exception):
    """One line naming the entry and the offending value; nothing of the set has changed when it is raised
    by ``check_entries``, ``plan`` or ``stage``."""


@dataclasses.dataclass
class Entry:
    """One path and the state it must have (content as UTF-8 bytes)."""

    index: int
    path: str
    state: str = "file"
    content: bytes | None = None
    src: str | None = None
    owner: str | None = None
    group: str | None = None
    mode: int | None = None
    validate: str | None = None
    # Filled by plan(): the uid and gid wanted (None: keep, or not known yet in check mode), and the file's
    # content as found (None: no file there), for the diff.
    uid: int | None = None
    gid: int | None = None
    found: bytes | None = None

    def where(self) -> str:
        return f"files[{self.index}] ({self.path})"


def parse_mode(value: object, where: str) -> int | None:
    """An octal mode given as a string ('0640', '750'); None when not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise HostFilesError(f"{where}: mode {value!r} is a number; quote the octal mode, such as '0640'")
    if not re.fullmatch(r"0?[0-7]{3}|[0-7]{4}", value):
        raise HostFilesError(f"{where}: mode {value!r} is not an octal mode such as '0640'")
    return int(value, 8)


def check_entries(items: Iterable[dict[str, Any]]) -> list[Entry]:
    """Entries from the module's ``files`` list, checked for what the argument spec cannot check."""
    entries = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = item.get("path") or ""
        where = f"files[{index}] ({path})"
        if not os.path.isabs(path) or path != os.path.normpath(path) or path == "/":
            raise HostFilesError(f"files[{index}]: path {path!r} is not an absolute, normalised path of a file")
        if path in seen:
            raise HostFilesError(f"{where}: the path is listed twice")
        seen.add(path)
        state = item.get("state") or "file"
        wanted = {"file": ("content",), "link": ("src",)}.get(state, ())
        for name in wanted:
            if item.get(name) is None:
                raise HostFilesError(f"{where}: state {state} needs {name}")
        allowed = {
            "file": ("content", "owner", "group", "mode", "validate"),
            "directory": ("owner", "group", "mode"),
            "link": ("src",),
            "absent": (),
        }[state]
        for name in ("content", "src", "owner", "group", "mode", "validate"):
            if item.get(name) is not None and name not in allowed:
                raise HostFilesError(f"{where}: {name} does not apply to state {state}")
        validate = item.get("validate")
        if validate is not None and "%s" not in validate:
            raise HostFilesError(f"{where}: validate {validate!r} has no %s for the file to check")
        mode = parse_mode(item.get("mode"), where)
        content = item.get("content")
        entries.append(Entry(index, path, state, None if content is None else content.encode("utf-8"),
                             item.get("src"), item.get("owner"), item.get("group"), mode, validate))  # fmt: skip
    return entries


def _lookup(entry: Entry, kind: str, name: str | None, check_mode: bool) -> int | None:
    """uid or gid of a name (or a number); None in check mode when it does not exist yet (an earlier task of a
    real run would create it)."""
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        if check_mode:
            return None
        raise HostFilesError(f"{entry.where()}: {kind} {name!r} does not exist on the host") from None


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _kind(st: os.stat_result | None) -> str:
    if st is None:
        return "absent"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"


def _attribute_changes(entry: Entry, st: os.stat_result) -> list[str]:
    changes = []
    if entry.owner is not None and (entry.uid is None or entry.uid != st.st_uid):
        changes.append("owner")
    if entry.group is not None and (entry.gid is None or entry.gid != st.st_gid):
        changes.append("group")
    if entry.mode is not None and stat.S_IMODE(st.st_mode) != entry.mode:
        changes.append("mode")
    return changes


def plan(entries: list[Entry], check_mode: bool = False) -> dict[str, list[str]]:
    """What each entry must change, as ``{path: [what, ...]}`` in the entries' order (only the paths that
    change). Only reads. Raises HostFilesError for an entry that cannot be done."""
    created_dirs = {e.path for e in entries if e.state == "directory"}
    changes: dict[str, list[str]] = {}
    for entry in entries:
        entry.uid = _lookup(entry, "owner", entry.owner, check_mode)
        entry.gid = _lookup(entry, "group", entry.group, check_mode)
        st = _lstat(entry.path)
        kind = _kind(st)
        parent = os.path.dirname(entry.path)
        if entry.state != "absent" and not os.path.isdir(parent) and parent not in created_dirs and not check_mode:
            raise HostFilesError(f"{entry.where()}: its directory {parent} does not exist")
        what: list[str] = []
        if entry.state == "absent":
            if kind == "directory" and os.listdir(entry.path):
                raise HostFilesError(f"{entry.where()}: is a directory that is not empty; only an empty one is removed")
            if kind != "absent":
                what = ["removed"]
        elif kind == "absent":
            what = ["created"]
        elif kind != entry.state:
            raise HostFilesError(f"{entry.where()}: is a {kind}, not a {entry.state}; remove it first (state absent)")
        elif entry.state == "link":
            if os.readlink(entry.path) != entry.src:
                what = ["target"]
        else:
            if entry.state == "file":
                with open(entry.path, "rb") as f:
                    entry.found = f.read()
                if entry.found != entry.content:
                    what.append("content")
            what += _attribute_changes(entry, st)
        if what:
            changes[entry.path] = what
    return changes


def _writes_content(entry: Entry, what: list[str]) -> bool:
    """Whether the planned change ``what`` of ``entry`` writes a file's content (a new file, or new content)."""
    return entry.state == "file" and ("created" in what or "content" in what)


def _staged_name(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.bakery-{os.getpid()}")


def _write_staged(entry: Entry, run_command: Callable[[str], tuple[int, str, str]]) -> str:
    """Write the entry's new content beside it (hidden), with its final owner and mode, and validate it."""
    directory, name = os.path.split(entry.path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".bakery")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(entry.content)
            old = _lstat(entry.path)
            uid = entry.uid if entry.uid is not None else (old.st_uid if old else -1)
            gid = entry.gid if entry.gid is not None else (old.st_gid if old else -1)
            os.fchown(f.fileno(), uid, gid)
            mode = entry.mode if entry.mode is not None else (stat.S_IMODE(old.st_mode) if old else 0o644)
            os.fchmod(f.fileno(), mode)
        if entry.validate:
            rc, out, err = run_command(entry.validate.replace("%s", tmp))
            if rc != 0:
                detail = " ".join((err or out or "").split())[:300]
                raise HostFilesError(f"{entry.where()}: validate failed (exit status {rc}): {detail}")
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def stage(
    entries: list[Entry], changes: dict[str, list[str]], run_command: Callable[[str], tuple[int, str, str]]
) -> dict[str, str]:
    """Staged content for each file whose content changes (or that is new) and whose directory exists already:
    ``{path: temporary path}``. On failure every staged file is removed again and HostFilesError raised."""
    staged: dict[str, str] = {}
    try:
        for entry in entries:
            what = changes.get(entry.path, [])
            if _writes_content(entry, what) and os.path.isdir(os.path.dirname(entry.path)):
                staged[entry.path] = _write_staged(entry, run_command)
    except BaseException:
        discard(staged)
        raise
    return staged


def discard(staged: dict[str, str]) -> None:
    for tmp in staged.values():
        _remove_quietly(tmp)


def _set_attributes(entry: Entry) -> None:
    os.chown(entry.path, -1 if entry.uid is None else entry.uid, -1 if entry.gid is None else entry.gid)
    if entry.mode is not None:
        os.chmod(entry.path, entry.mode)


def commit(
    entries: list[Entry],
    changes: dict[str, list[str]],
    staged: dict[str, str],
    run_command: Callable[[str], tuple[int, str, str]],
) -> None:
    """Make the planned changes in the entries' order. Staged files are renamed over their paths (atomically);
    the staged files left when something fails are removed."""
    try:
        for entry in entries:
            what = changes.get(entry.path)
            if not what:
                continue
            if entry.state == "absent":
                (os.rmdir if os.path.isdir(entry.path) and not os.path.islink(entry.path) else os.unlink)(entry.path)
            elif entry.state == "directory":
                if "created" in what:
                    os.mkdir(entry.path, 0o755 if entry.mode is None else 0o700)
                _set_attributes(entry)
            elif entry.state == "link":
                tmp = _staged_name(entry.path)
                _remove_quietly(tmp)
                os.symlink(entry.src, tmp)
                os.replace(tmp, entry.path)
            elif _writes_content(entry, what):
                tmp = staged.pop(entry.path, None) or _write_staged(entry, run_command)
                os.replace(tmp, entry.path)
            else:
                _set_attributes(entry)
    finally:
        discard(staged)


def _text(content: bytes | None, path: str) -> str:
    if content is None:
        return ""
    if len(content) > DIFF_MAX_BYTES:
        return f"[{path}: {len(content)} bytes, not shown]\n"
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return f"[{path}: {len(content)} bytes of binary content]\n"


def _describe(path: str, entry: Entry | None = None) -> dict[str, str]:
    """The state of a path as a diff shows it: what it is, its link target, owner, group and mode."""
    if entry is not None:
        shown = {"path": path, "state": entry.state}
        if entry.state == "link":
            shown["src"] = entry.src
        for name in ("owner", "group"):
            if getattr(entry, name) is not None:
                shown[name] = getattr(entry, name)
        if entry.mode is not None:
            shown["mode"] = f"{entry.mode:04o}"
        return shown
    st = _lstat(path)
    kind = _kind(st)
    shown = {"path": path, "state": kind}
    if kind == "link":
        shown["src"] = os.readlink(path)
    elif kind != "absent":
        for name, getter, ident in (("owner", pwd.getpwuid, st.st_uid), ("group", grp.getgrgid, st.st_gid)):
            try:
                shown[name] = getter(ident)[0]
            except KeyError:
                shown[name] = str(ident)
        shown["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
    return shown


def diffs(entries: list[Entry], changes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Diffs of the planned changes (taken before they are made): file content as text, and the state, owner,
    group and mode of each changed path."""
    out = []
    for entry in entries:
        what = changes.get(entry.path)
        if not what:
            continue
        if _writes_content(entry, what):
            out.append({
                "before_header": entry.path if entry.found is not None else "/dev/null",
                "after_header": entry.path,
                "before": _text(entry.found, entry.path),
                "after": _text(entry.content, entry.path),
            })  # fmt: skip
        if what != ["content"]:
            out.append({"before": _describe(entry.path), "after": _describe(entry.path, entry)})
    return out
