"""The administrator's password: a salted scrypt hash on disk, never the password itself.

Run as ``python3 -m employee_directory.passwords FILE [--group GROUP] [--check]`` with the
password on standard input: it writes a new hash to FILE unless FILE already holds a hash of
that password.  Exit status 0: unchanged; 3: changed (or, with --check, would change);
2: refused (the password is too short, or FILE cannot be written).
"""

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import shutil
import sys
import tempfile

MIN_LENGTH = 12
# scrypt with N=2**14, r=8, p=1 (16 MiB per check): the interactive setting its author recommends.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024
EXIT_UNCHANGED, EXIT_REFUSED, EXIT_CHANGED = 0, 2, 3


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def hash_password(password, cost=_N):
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt; N is ``cost``, kept in the hash."""
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=cost, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${cost}${_R}${_P}${_b64(salt)}${_b64(derived)}"


def verify_password(password, stored):
    """True when ``password`` matches the ``stored`` hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt, validate=True), base64.b64decode(expected, validate=True)
        derived = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


def read_hash(path):
    """The stored hash at ``path``, or "" when there is none."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return ""


def write_hash(path, stored, group=None):
    """Replace ``path`` atomically with ``stored``, mode 0640 (group ``group`` when given)."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".password-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(stored + "\n")
        os.chmod(temporary, 0o640)
        if group:
            shutil.chown(temporary, group=group)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None, stdin=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m employee_directory.passwords", description="Store the password read from stdin."
    )
    parser.add_argument("file")
    parser.add_argument("--group", help="group of the file (mode 0640)")
    parser.add_argument("--check", action="store_true", help="only report whether it would change")
    args = parser.parse_args(argv)
    password = (stdin or sys.stdin).read()
    if len(password) < MIN_LENGTH:
        # Never the password itself, only its length.
        print(f"refused: the password has {len(password)} characters; at least {MIN_LENGTH} are needed")
        return EXIT_REFUSED
    if verify_password(password, read_hash(args.file)):
        print("unchanged")
        return EXIT_UNCHANGED
    if not args.check:
        try:
            write_hash(args.file, hash_password(password), args.group)
        except (OSError, LookupError) as exc:
            print(f"refused: cannot write {args.file}: {exc}")
            return EXIT_REFUSED
    print("changed")
    return EXIT_CHANGED


if __name__ == "__main__":
    sys.exit(main())
