"""bakery.ec2.recipe_hash: what is and is not part of an image's recipe."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.bakery.ec2.plugins.filter import recipe_hash as module
from ansible_collections.bakery.ec2.plugins.filter.recipe_hash import FilterModule, recipe_hash, recipe_inputs

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "webserver"
BASE = "ami-0123456789abcdef0"
PASSWORD = "correct horse battery"
VARS = {
    "webserver_admin_password": PASSWORD,
    "webserver_store": "dynamodb",
    "webserver_dynamodb_table": "demo-employees",
    "webserver_seed_employees": [{"name": "Ada", "email": "ada@example.com"}],
}


def copy_role(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name / "roles" / "webserver"
    shutil.copytree(ROLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_the_filter_is_the_collections_and_gives_64_hex_characters():
    value = FilterModule().filters()["recipe_hash"](BASE, VARS, collection_version="0.2.0")
    assert len(value) == 64 and int(value, 16) >= 0 and value == value.lower()


def test_same_inputs_on_another_checkout_path_give_the_same_hash(tmp_path):
    here = recipe_hash(BASE, VARS, role_path=str(ROLE), collection_version="0.2.0")
    one, other = copy_role(tmp_path, "checkout-a"), copy_role(tmp_path, "elsewhere/checkout-b")
    (other / "files" / "app" / "__pycache__").mkdir(exist_ok=True)
    (other / "files" / "app" / "__pycache__" / "web.cpython-311.pyc").write_bytes(b"\x00compiled")
    for path in other.rglob("*"):  # other times and modes than the first copy's
        path.touch()
    assert recipe_hash(BASE, VARS, role_path=str(one), collection_version="0.2.0") == here
    assert recipe_hash(BASE, dict(reversed(VARS.items())), role_path=str(other), collection_version="0.2.0") == here


def test_the_hash_is_the_same_in_another_process_with_another_hash_seed(tmp_path):
    role = copy_role(tmp_path, "seed")
    code = (
        "import sys; from ansible.plugins.loader import init_plugin_loader; init_plugin_loader([sys.argv[1]]);"
        "from ansible_collections.bakery.ec2.plugins.filter.recipe_hash import recipe_hash;"
        f"print(recipe_hash({BASE!r}, {VARS!r}, role_path=sys.argv[2], collection_version='0.2.0'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / ".build" / "collections"), str(role)],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()  # fmt: skip
    assert out == recipe_hash(BASE, VARS, role_path=str(ROLE), collection_version="0.2.0")


@pytest.mark.parametrize(
    "change",
    ["base", "file content", "new file", "renamed file", "variable", "new variable", "password", "version"],
)
def test_every_input_changes_the_hash(tmp_path, change):
    role = copy_role(tmp_path, "changed")
    before = recipe_hash(BASE, VARS, role_path=str(role), collection_version="0.2.0")
    base, variables, version = BASE, dict(VARS), "0.2.0"
    if change == "base":
        base = "ami-0fedcba9876543210"
    elif change == "file content":
        page = role / "templates" / "nginx-site.conf.j2"
        page.write_text(page.read_text() + "# one more line\n")
    elif change == "new file":
        (role / "files" / "extra.txt").write_text("x")
    elif change == "renamed file":
        (role / "vars" / "Debian.yml").rename(role / "vars" / "Debian-12.yml")
    elif change == "variable":
        variables["webserver_store"] = "sqlite"
    elif change == "new variable":
        variables["webserver_app_title"] = "Staff Directory"
    elif change == "password":
        variables["webserver_admin_password"] = PASSWORD + "!"
    else:
        version = "0.3.0"
    assert recipe_hash(base, variables, role_path=str(role), collection_version=version) != before


def test_a_readme_or_a_test_of_the_role_is_not_part_of_it(tmp_path):
    role = copy_role(tmp_path, "docs")
    before = recipe_hash(BASE, VARS, role_path=str(role), collection_version="0.2.0")
    (role / "README.md").write_text("other words")
    (role / "tests").mkdir()
    (role / "tests" / "test.yml").write_text("---\n")
    assert recipe_hash(BASE, VARS, role_path=str(role), collection_version="0.2.0") == before


def test_secrets_are_included_only_as_their_own_hash():
    document = recipe_inputs(BASE, dict(VARS, app_token="s3cr3t-t0ken"), ROLE, "0.2.0", secrets=["app_token"])
    assert PASSWORD not in document and "s3cr3t-t0ken" not in document
    assert '"webserver_admin_password":"sha256:' in document and '"app_token":"sha256:' in document
    assert '"webserver_store":"dynamodb"' in document  # not a secret: as it is


def test_values_generated_per_host_are_not_part_of_it():
    """The admin password's salted hash is made on each host (a registered result of the role); a per-host value
    given by name in exclude is left out too."""
    one = recipe_hash(BASE, VARS, collection_version="0.2.0")
    with_host_values = dict(
        VARS,
        __webserver_password={"rc": 3, "stdout": "scrypt$16384$8$1$c2FsdDE=$aGFzaDE="},
        webserver_boot_id="5f3c2e",
    )
    other_host = dict(with_host_values, __webserver_password={"rc": 0, "stdout": "scrypt$16384$8$1$c2FsdDI=$aGFzaDI="})
    other_host["webserver_boot_id"] = "9a1b7d"
    assert recipe_hash(BASE, with_host_values, collection_version="0.2.0", exclude=["webserver_boot_id"]) == one
    assert recipe_hash(BASE, other_host, collection_version="0.2.0", exclude=["webserver_boot_id"]) == one


def test_the_default_role_and_version_are_the_collections(tmp_path):
    assert ROLE.resolve() == module.DEFAULT_ROLE
    assert module.own_version() == next(
        line.split(":", 1)[1].strip() for line in (ROOT / "galaxy.yml").read_text().splitlines()
        if line.startswith("version:")
    )  # fmt: skip
    (tmp_path / "MANIFEST.json").write_text('{"collection_info": {"version": "9.8.7"}}')
    assert module.own_version(tmp_path) == "9.8.7"
    own = module.own_version()
    assert recipe_hash(BASE, VARS) == recipe_hash(BASE, VARS, role_path=str(ROLE), collection_version=own)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ami-123",), "'ami-123' is not an AMI ID"),
        ((None,), "None is not an AMI ID"),
        ((BASE, ["webserver_store"]), "role_vars is a list, not a dictionary"),
        ((BASE, {}, "/nonexistent/role"), "role_path '/nonexistent/role' is not a role"),
    ],
)
def test_bad_input_fails_in_one_line_naming_it(args, message):
    with pytest.raises(AnsibleFilterError) as err:
        recipe_hash(*args)
    assert message in str(err.value) and "\n" not in str(err.value)
