"""Packs the app's code (files/app) into one gzipped tar whose bytes depend only on the files' paths and contents.

Run on the controller with its Python: ``python3 pack_app.py <files/app>``. Sorted, owner root, fixed modes and
times, no __pycache__; prints "<SHA-256> <base64>" for unpack_app.sh on the host.
"""

import base64
import gzip
import hashlib
import io
import os
import sys
import tarfile


def write_tar(fileobj, root):
    """Every file and directory under root/employee_directory into a tar on fileobj, in a fixed order and form."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for top, dirs, files in os.walk(os.path.join(root, "employee_directory")):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in ["", *sorted(f for f in files if not f.endswith(".pyc"))]:
                path = os.path.join(top, name) if name else top
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isfile():
                    with open(path, "rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)


def pack(root):
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        write_tar(gz, root)
    return raw.getvalue()


if __name__ == "__main__":
    archive = pack(sys.argv[1])
    print(hashlib.sha256(archive).hexdigest(), base64.b64encode(archive).decode())
