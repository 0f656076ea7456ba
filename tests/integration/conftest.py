"""Integration harness: a real moto server on 127.0.0.1 (random free port) for the whole session.

Playbooks under ``playbooks/`` run with ``ansible-playbook`` against it and assert with
``ansible.builtin.assert``; a playbook that fails fails its test. The server is stopped by
the PID this harness started.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also loaded by file path from tests/reliability/conftest.py
    sys.path.insert(0, str(HERE))
from moto_images import ImageCatalogue

REPO = HERE.parents[1]
BIN = Path(sys.executable).parent
DEBIAN = "136693071363"
SELF = "123456789012"  # moto's default account
OTHER = "210987654321"


def catalogue():
    """At least 20 images: several owners, names, architectures and creation dates."""
    images = ImageCatalogue()
    for month in range(1, 7):
        stamp = f"2026{month:02d}15"
        created = f"2026-{month:02d}-15T08:00:00.000Z"
        images.add(DEBIAN, f"debian-12-amd64-{stamp}-{1000 + month}", "x86_64", created)
        images.add(DEBIAN, f"debian-12-arm64-{stamp}-{1000 + month}", "arm64", created)
    for month in range(4, 8):
        stamp = f"2026{month:02d}20"
        images.add(DEBIAN, f"debian-13-amd64-{stamp}-{2000 + month}", "x86_64", f"2026-{month:02d}-20T08:00:00.000Z")
    # A newer look-alike from another account: must never be picked for Debian's owner.
    images.add(OTHER, "debian-12-amd64-20261231-9999", "x86_64", "2026-12-31T08:00:00.000Z")
    images.add(OTHER, "ubuntu-24.04-amd64-20260301", "x86_64", "2026-03-01T08:00:00.000Z")
    for idx, (role, stage) in enumerate([("web", "golden"), ("web", "test"), ("db", "golden"), ("web", "golden")]):
        images.add(
            SELF,
            f"bakery-{role}-{stage}-{idx}",
            "x86_64",
            f"2026-0{idx + 1}-01T00:00:00.000Z",
            {"Role": role, "Stage": stage},
        )
    images.add(SELF, "zz-last-by-name", "x86_64", "2025-01-01T00:00:00.000Z")
    images.add(SELF, "aa-first-by-name", "x86_64", "2025-02-01T00:00:00.000Z")
    return images


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(cmd, env, log_path, probe_url, what):
    """Run ``cmd`` (a server on 127.0.0.1), wait until ``probe_url`` answers, stop it by its PID afterwards."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(probe_url, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"{what} did not start; see {log_path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def moto_server_cmd(port: int) -> list[str]:
    """moto_server on 127.0.0.1:``port``, with the answers AWS gives that moto leaves out (sandbox/moto_gaps.py)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from sandbox import moto_gaps; moto_gaps.apply(); "
        "from moto.server import main; main(sys.argv[2:])"
    )
    return [sys.executable, "-c", code, str(REPO), "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moto")
    amis = workdir / "amis.json"
    catalogue().write(amis)
    port = free_port()
    env = dict(os.environ, MOTO_AMIS_PATH=str(amis), MOTO_ALLOW_NONEXISTENT_REGION="true")
    url = f"http://127.0.0.1:{port}"
    with local_server(moto_server_cmd(port), env, workdir / "moto.log", f"{url}/moto-api/", "moto server"):
        yield url


@pytest.fixture(scope="session")
def moto_public_endpoint(tmp_path_factory):
    """A moto server with its own catalogue: Amazon Linux images and the SSM public parameters naming them,
    each region with its own AMI IDs (nothing here changes it, so it is never reset)."""
    workdir = tmp_path_factory.mktemp("moto-public")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MOTO_AMIS_PATH"}
    url = f"http://127.0.0.1:{port}"
    cmd = moto_server_cmd(port)
    with local_server(cmd, env, workdir / "moto.log", f"{url}/moto-api/", "moto server (default catalogue)"):
        yield url


@pytest.fixture
def moto(moto_endpoint):
    """A moto endpoint reset to its initial state (the catalogue only) for this test."""
    req = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    return moto_endpoint


@pytest.fixture
def aws_env(moto):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=moto,
        AWS_ACCESS_KEY_ID="AKIAINTEGRATION",
        AWS_SECRET_ACCESS_KEY="integration-secret",
        AWS_DEFAULT_REGION="us-east-1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    return env


@pytest.fixture
def playbook(aws_env, tmp_path):
    """Run ``playbooks/<name>.yml``; fail the test with its output when the playbook fails."""

    def run(name, *extra_args, expect_rc=0):
        cmd = [str(BIN / "ansible-playbook"), str(HERE / "playbooks" / f"{name}.yml"), *extra_args]
        proc = subprocess.run(cmd, env=aws_env, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
        if proc.returncode != expect_rc:
            pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
