"""The collection tarball is complete, ships nothing it should not, and works from an empty collections path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

MUST_SHIP = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "requirements.txt",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "plugins/modules/ami_find.py",
    "plugins/modules/ec2_launch.py",
    "plugins/modules/ami_from_instance.py",
    "plugins/modules/ami_retire.py",
    "plugins/module_utils/_images.py",
    "plugins/modules/ami_parameter.py",
    "plugins/filter/recipe_hash.py",
    "plugins/inventory/instances.py",
    "plugins/module_utils/_changes.py",
    "plugins/module_utils/_client.py",
    "plugins/module_utils/_connection.py",
    "plugins/module_utils/_errors.py",
    "plugins/module_utils/_shapes.py",
    "plugins/module_utils/_tags.py",
    "plugins/module_utils/_module.py",
    "plugins/doc_fragments/connection.py",
    "roles/webserver/tasks/main.yml",
    "roles/webserver/meta/argument_specs.yml",
    "playbooks/flow.yml",
    "playbooks/pipeline.yml",
    "playbooks/vars/flow.yml",
    "playbooks/vars/pipeline.yml",
    "playbooks/inventory/bakery.instances.yml",
]
NEVER_SHIP = ("sandbox/", "bench/", ".venv", ".build/", ".git/", "__pycache__", ".pyc", "tests/output", ".cache/")


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO)])
    (path,) = out.glob("bakery-ec2-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    root = tmp_path_factory.mktemp("collections")
    # Without the checkout on the collections path, or ansible-galaxy finds it "already installed".
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    # Its dependencies (galaxy.yml) from the copies make venv unpacked from the ansible package: offline, no Galaxy.
    deps = [str(REPO / ".build" / "collections" / "ansible_collections" / c) for c in ("amazon/aws", "community/aws")]
    run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", str(root), str(tarball), *deps], env=env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_NOCOLOR="1")
    return root, env


def test_tarball_file_list(tarball):
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers()]
    missing = [name for name in MUST_SHIP if name not in names and f"{name}/" not in names]
    assert missing == []
    shipped_badly = [n for n in names if any(bad in n for bad in NEVER_SHIP) or n.startswith("tests/output")]
    assert shipped_badly == []
    print(f"tarball: {tarball.stat().st_size} bytes, {len([n for n in names if not n.endswith('/')])} entries")


@pytest.mark.parametrize(
    ("plugin_type", "name"),
    [
        ("module", "bakery.ec2.ami_find"),
        ("module", "bakery.ec2.ec2_launch"),
        ("module", "bakery.ec2.ami_from_instance"),
        ("module", "bakery.ec2.ami_retire"),
        ("module", "bakery.ec2.ami_parameter"),
        ("filter", "bakery.ec2.recipe_hash"),
        ("inventory", "bakery.ec2.instances"),
        ("role", "bakery.ec2.webserver"),
    ],
)
def test_ansible_doc_from_installed_tarball(installed, plugin_type, name):
    _root, env = installed
    proc = run([BIN / "ansible-doc", "-t", plugin_type, name], env=env)
    assert "bakery.ec2" in proc.stdout
    assert "EXAMPLES" in proc.stdout or plugin_type == "role"
    assert str(REPO) not in proc.stdout, "documentation was read from the checkout, not the installed tarball"


def test_smoke_playbook_from_installed_tarball(installed, aws_env):
    root, env = installed
    env = dict(aws_env, ANSIBLE_COLLECTIONS_PATH=str(root))
    proc = run([BIN / "ansible-playbook", str(Path(__file__).parent / "smoke" / "tarball_smoke.yml")], env=env)
    assert "failed=0" in proc.stdout
    # The flow and its teardown resolve every module, their dependencies' included (amazon.aws, community.aws).
    for playbook in ("bakery.ec2.flow", "bakery.ec2.pipeline", "bakery.ec2.teardown"):
        run([BIN / "ansible-playbook", "--syntax-check", playbook], env=env)
    listed = run([BIN / "ansible-galaxy", "collection", "list", "-p", str(root)], env=env).stdout
    assert "amazon.aws" in listed and "community.aws" in listed


def test_ee_build_context(tarball, tmp_path):
    """ansible-builder 3 turns execution-environment.yml into a complete build context (building it needs podman)."""
    work = tmp_path / "ee"
    (work / ".build" / "dist").mkdir(parents=True)
    shutil.copy(tarball, work / ".build" / "dist" / tarball.name)
    shutil.copy(REPO / "execution-environment.yml", work)
    builder = [BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context"]
    run([*builder, "--output-filename", "Containerfile"], cwd=work)
    context = work / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "quay.io/centos/centos:stream9" in containerfile
    assert (context / "_build" / "collections" / tarball.name).is_file()
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"][0]["name"].endswith(tarball.name)
    # Mitogen for flow_mitogen, pinned as make test runs it.
    assert "mitogen==0.3.54" in (context / "_build" / "requirements.txt").read_text().split()


def test_the_recipe_hash_of_the_installed_collection_is_the_checkouts(installed):
    """Same inputs from another path (the installed tarball, version from MANIFEST.json): the same hash."""
    _root, env = installed
    expr = "{{ 'ami-0123456789abcdef0' | bakery.ec2.recipe_hash({'webserver_store': 'sqlite'}) }}"
    hashes = []
    for environ in (env, dict(env, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"))):
        out = run([BIN / "ansible", "localhost", "-m", "ansible.builtin.debug", "-a", f"msg={expr}"], env=environ)
        hashes.append(out.stdout.split('"msg": "')[1].split('"')[0])
    assert len(hashes[0]) == 64 and hashes[0] == hashes[1]
