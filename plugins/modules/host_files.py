#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_files
short_description: Put a set of files, directories and links on a host in one module run
version_added: 0.2.0
description:
  - Makes each path of O(files) what its entry says (a file with this content, a directory, a link, or nothing),
    with the owner, group and mode given, in one module run on the host instead of one or two runs per path
    (M(ansible.builtin.template), M(ansible.builtin.copy) and M(ansible.builtin.file) each run a module, and the
    first two also copy a temporary file to the host). The webserver role configures a new instance with it; on a
    fleet the runs saved are what configuring each further host costs.
  - Render templates on the controller and pass the text as C(content), for example with
    C(lookup('ansible.builtin.template', 'site.conf.j2')).
  - Bad input changes nothing. Every entry is checked first (paths, owners and groups that exist, directories
    that exist or are created by an earlier entry, a path of another type in the way); then each new file's
    content is written to a hidden temporary file beside it and validated; only then are the changes made, in
    the order of O(files). A new file is renamed over the old one, so a reader sees the old or the new content,
    never a part. A file inside a directory that the same task creates is written and validated when that
    directory exists.
  - Returns which paths changed (RV(changed_paths)) and what changed for each (RV(changes)), so that later tasks
    restart or reload only what needs it.
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  files:
    description:
      - The paths and what each must be, done in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - Absolute path on the host. Each path appears once.
        type: path
        required: true
      state:
        description:
          - V(file) a regular file with O(files[].content); V(directory) a directory (its parent must exist, or be
            an earlier entry); V(link) a symbolic link to O(files[].src); V(absent) nothing there (a file, a link or
            an empty directory is removed).
          - A path that exists as something else fails the task; nothing is replaced by a different type.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description:
          - The whole content of the file (state V(file)), as text; written as UTF-8.
        type: str
      src:
        description:
          - Where the link points (state V(link)), written as given.
        type: str
      owner:
        description:
          - User that owns the file or directory, by name or number. When not set, an existing path keeps its
            owner and a new one belongs to the user the module runs as.
          - A name that does not exist fails the task, except in check mode, where an earlier task (such as
            M(ansible.builtin.user)) would have created it; the path is then reported as changing.
        type: str
      group:
        description:
          - Group of the file or directory, by name or number; as O(files[].owner) otherwise.
        type: str
      mode:
        description:
          - Permissions as a quoted octal string, such as V('0640'). When not set, an existing path keeps its mode;
            a new file gets V(0644) and a new directory V(0755) (less what the umask removes).
          - A number is refused (YAML reads an unquoted C(0640) as the number 416).
        type: raw
      validate:
        description:
          - Command that checks a new file's content before it replaces the path, with C(%s) where the file's name
            goes (a temporary file beside the path, with the final owner and mode), as in
            M(ansible.builtin.template). A non-zero exit fails the task with the command's message, and nothing of
            the set has changed.
          - Run without a shell; use C(/bin/sh -c '...') for more than one command. Not run in check mode.
        type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change, without writing; validation commands are not run.
  diff_mode:
    support: full
    description: Shows the old and new content of each file that changes, and the old and new type, owner, group
      and mode of each path that changes otherwise.
  platform:
    support: full
    platforms: posix
    description: Any POSIX host with Python; owners and groups are looked up in its user and group databases.
notes:
  - Links are replaced atomically too (a new link renamed over the old one). Their owner and mode are not managed.
  - A file's content is compared in full with the content given. For large or binary files use
    M(ansible.builtin.copy) or an archive.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Configure the app and its nginx site in one run (templates rendered on the controller)
  bakery.ec2.host_files:
    files:
      - path: /etc/myapp
        state: directory
        owner: root
        group: myapp
        mode: "0750"
      - path: /etc/myapp/config.json
        content: "{{ lookup('ansible.builtin.template', 'config.json.j2') }}"
        owner: root
        group: myapp
        mode: "0640"
      - path: /etc/nginx/sites-available/myapp
        content: "{{ lookup('ansible.builtin.template', 'site.conf.j2') }}"
        mode: "0644"
        validate: /usr/sbin/nginx -t -q -c %s
      - path: /etc/nginx/sites-enabled/myapp
        state: link
        src: /etc/nginx/sites-available/myapp
      - path: /etc/nginx/sites-enabled/default
        state: absent
  register: myapp_files

- name: Restart the app when its settings changed
  ansible.builtin.systemd_service:
    name: myapp
    state: restarted
  when: "'/etc/myapp/config.json' in myapp_files.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: The paths that changed (or would change, in check mode), in the order of O(files).
  returned: always
  type: list
  elements: str
  sample: ["/etc/myapp/config.json", "/etc/nginx/sites-enabled/default"]
changes:
  description:
    - For each path that changed, what changed. V(created), V(removed), V(content), V(target) (a link's),
      V(owner), V(group), V(mode).
  returned: always
  type: dict
  sample: {"/etc/myapp/config.json": ["content"], "/etc/nginx/sites-enabled/default": ["removed"]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bakery.ec2.plugins.module_utils import _host_files

ENTRY = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": list(_host_files.STATES), "default": "file"},
    "content": {"type": "str"},
    "src": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "raw"},
    "validate": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True, "options": ENTRY}},
        supports_check_mode=True,
    )
    try:
        entries = _host_files.check_entries(module.params["files"])
        changes = _host_files.plan(entries, module.check_mode)
        result = {"changed": bool(changes), "changed_paths": list(changes), "changes": changes}
        if module._diff:
            result["diff"] = _host_files.diffs(entries, changes)
        if changes and not module.check_mode:
            staged = _host_files.stage(entries, changes, module.run_command)
            _host_files.commit(entries, changes, staged, module.run_command)
    except _host_files.HostFilesError as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg=f"{e.filename or ''}: {e.strerror}".lstrip(": "))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
