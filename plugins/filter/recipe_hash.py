# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: recipe_hash
short_description: The hash of everything that decides what a baked image contains
version_added: 0.2.0
description:
  - Returns a SHA-256 (64 hexadecimal characters) of what decides the content of an image baked with a role, namely the
    base image ID, the role's files, the variables the role receives, and the collection's version.
    C(bakery.ec2.pipeline) tags its images C(bakery:recipe) with it and bakes again only when it changes; the flow's
    C(image.yml) tags its image the same way, so the two agree.
  - B(Base image) - the input, an AMI ID (each region has its own IDs, so use one region's throughout).
  - B(Role files) - every file under the role's C(tasks), C(handlers), C(templates), C(files), C(defaults),
    C(vars) and C(meta), by its path inside the role and its content. The role's own path, file times and owners
    are not part of it, so another checkout path or another machine gives the same hash. Python caches
    (C(__pycache__), C(*.pyc)) are left out.
  - B(Role variables) - O(role_vars), sorted by name, each value as canonical JSON. A secret (an option of the
    role's C(meta/argument_specs.yml) with C(no_log), such as C(webserver_admin_password), or a name in
    O(secrets)) is included only as the SHA-256 of its value, so the hash never reveals it.
  - Values generated on each host are not inputs and must not be given; variables whose names start with C(__)
    (a role's private facts and registered results, such as the admin password's salted hash) and the names in
    O(exclude) are left out even when given.
  - B(Collection version) - O(collection_version), by default this collection's version (its C(MANIFEST.json)
    when installed, its C(galaxy.yml) in a checkout).
positional: role_vars
options:
  _input:
    description: The base image ID (an AMI ID).
    type: str
    required: true
  role_vars:
    description:
      - The variables the role receives, by name (role parameters, play and extra variables alike). Variables
        left at the role's defaults may be omitted, as the defaults file is hashed with the role.
    type: dict
    default: {}
  role_path:
    description:
      - The role's directory. By default this collection's C(webserver) role.
    type: path
  collection_version:
    description:
      - The version hashed as the collection's. By default this collection's own.
    type: str
  secrets:
    description:
      - More variable names whose values are secrets, hashed before they are included (besides the role's
        C(no_log) options).
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Variable names that are left out (values generated per host, or that do not change the image).
    type: list
    elements: str
    default: []
seealso:
  - module: bakery.ec2.ami_from_instance
    description: >-
      Bakes the images whose tag C(bakery:recipe) holds this hash; the playbook C(bakery.ec2.pipeline) rebakes only when
      the hash changes (docs/flow.md, "Keeping images current", in the collection's repository).
  - module: bakery.ec2.ami_parameter
"""

EXAMPLES = r"""
- name: The recipe of the image the flow bakes from this base
  ansible.builtin.set_fact:
    recipe: >-
      {{ base.image_id | bakery.ec2.recipe_hash({'webserver_store': 'dynamodb',
                                                 'webserver_admin_password': admin_password}) }}

- name: Find an approved image of that recipe
  bakery.ec2.ami_find:
    owners: [self]
    tags:
      "bakery:recipe": "{{ recipe }}"
      "bakery:status": approved
    allow_empty: true

- name: The hash of another role, with one more secret and a value that changes on every run left out
  ansible.builtin.debug:
    msg: >-
      {{ 'ami-0123456789abcdef0' | bakery.ec2.recipe_hash(my_role_vars, role_path=playbook_dir ~ '/roles/app',
                                                          secrets=['app_api_token'], exclude=['app_build_time']) }}
"""

RETURN = r"""
_value:
  description: The hash, 64 lower-case hexadecimal characters (SHA-256). Its first 12 characters name it in messages.
  type: str
  sample: 3f7c0a9e5d2b41c8a6e0f4d1b9c7a5e3d2f1c0b9a8e7d6c5b4a3f2e1d0c9b8a7
"""

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# The parts of a role that end up on the host (README, tests and the like do not).
ROLE_DIRS = ("tasks", "handlers", "templates", "files", "defaults", "vars", "meta")
AMI_RE = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")
COLLECTION_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROLE = COLLECTION_ROOT / "roles" / "webserver"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value gives the same bytes on any machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=to_text)


def role_files(role_path: Path) -> list[tuple[str, str]]:
    """``[(path inside the role, SHA-256 of its content)]``, sorted by path."""
    files = []
    for part in ROLE_DIRS:
        top = role_path / part
        if not top.is_dir():
            continue
        for path in top.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            files.append((path.relative_to(role_path).as_posix(), _sha256(path.read_bytes())))
    return sorted(files)


def secret_options(role_path: Path) -> set[str]:
    """Names of the role's options marked ``no_log`` in ``meta/argument_specs.yml`` (any entry point)."""
    specs_file = role_path / "meta" / "argument_specs.yml"
    if not specs_file.is_file():
        return set()
    from ansible.parsing.yaml.loader import AnsibleLoader

    specs = AnsibleLoader(specs_file.read_text(encoding="utf-8")).get_single_data() or {}
    names: set[str] = set()
    for entry in (specs.get("argument_specs") or {}).values():
        for name, spec in ((entry or {}).get("options") or {}).items():
            if isinstance(spec, dict) and spec.get("no_log"):
                names.add(name)
    return names


def own_version(root: Path = COLLECTION_ROOT) -> str:
    """This collection's version: MANIFEST.json of an installed copy, else galaxy.yml of a checkout."""
    manifest = root / "MANIFEST.json"
    if manifest.is_file():
        return json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
    galaxy = root / "galaxy.yml"
    if galaxy.is_file():
        for line in galaxy.read_text(encoding="utf-8").splitlines():
            if line.startswith("version:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    raise AnsibleFilterError(f"recipe_hash: no MANIFEST.json or galaxy.yml with a version in {root}")


def recipe_inputs(
    base_image_id: str,
    role_vars: dict[str, Any],
    role_path: Path,
    version: str,
    secrets: Iterable[str] = (),
    exclude: Collection[str] = (),
) -> str:
    """What the hash is made of, as one canonical document (a pure function of its arguments)."""
    hidden = secret_options(role_path) | set(secrets)
    variables = {}
    for name in sorted(role_vars):
        if name.startswith("__") or name in exclude:
            continue
        value = role_vars[name]
        if name in hidden:
            value = "sha256:" + _sha256(_canonical(value).encode("utf-8"))
        variables[name] = value
    return _canonical(
        {
            "base_image_id": base_image_id,
            "role_files": role_files(role_path),
            "role_vars": variables,
            "collection_version": version,
        }
    )


def recipe_hash(
    base_image_id: str,
    role_vars: dict[str, Any] | None = None,
    role_path: str | None = None,
    collection_version: str | None = None,
    secrets: Iterable[str] | None = None,
    exclude: Collection[str] | None = None,
) -> str:
    """SHA-256 of the base image, the role's files, its variables and the collection's version."""
    if not isinstance(base_image_id, str) or not AMI_RE.match(base_image_id):
        raise AnsibleFilterError(f"recipe_hash: {base_image_id!r} is not an AMI ID (ami- and 8 or 17 hex digits)")
    if role_vars is not None and not isinstance(role_vars, dict):
        raise AnsibleFilterError(f"recipe_hash: role_vars is a {type(role_vars).__name__}, not a dictionary")
    path = Path(role_path) if role_path else DEFAULT_ROLE
    if not (path / "tasks").is_dir():
        raise AnsibleFilterError(f"recipe_hash: role_path {str(path)!r} is not a role (it has no tasks directory)")
    version = collection_version if collection_version is not None else own_version()
    document = recipe_inputs(base_image_id, role_vars or {}, path, str(version), secrets or (), exclude or ())
    return _sha256(document.encode("utf-8"))


class FilterModule:
    def filters(self) -> dict[str, Callable[..., str]]:
        return {"recipe_hash": recipe_hash}
