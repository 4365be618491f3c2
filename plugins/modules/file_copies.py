#!/usr/bin/python
# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module onprem.llm.file_copies: copies of host files in a directory, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: file_copies
short_description: Keep copies of files of the host in a directory of their own, in one call
version_added: 0.1.0
description:
  - Makes O(directory) (owner root, group O(group), mode O(directory_mode)) and keeps in it a
    copy of each of O(files) with owner root, group O(group) and the file's mode, replacing a
    copy whose content or attributes differ. The pki role gives a service that runs as its own
    user copies of the host's certificate and key this way.
  - One module call does what a stat, a directory and a copy task per file would do. Its
    action first reads the directory, the sources and the copies with one shell command
    (coreutils C(stat) and C(sha1sum)); copies already right are answered from that read, so a
    run that changes nothing starts no module at all.
  - A source that is missing fails the task before anything is changed, naming it. In check
    mode it is returned in RV(missing) instead (the task that writes it has not really run).
  - Content is never returned, and the diff names the files only, since the copies are keys.
  - With O(in_place), a copy that differs is rewritten in place (the same file, truncated and
    written) instead of replaced, for a service that watches its files. vLLM's
    C(--enable-ssl-refresh) loads a renewed certificate without a restart, but loses its watch
    on a file that is replaced.
author:
  - onprem.llm maintainers (@onprem-llm)
options:
  service:
    description: The service the copies are for, in messages.
    type: str
    default: the service
  directory:
    description: Directory of the copies.
    type: path
    required: true
  directory_mode:
    description: Mode of O(directory), octal.
    type: str
    default: "0750"
  group:
    description: Group of O(directory) and of the copies (the service's group).
    type: str
    required: true
  in_place:
    description:
      - Rewrite a copy that differs in place rather than write a new file and move it over the
        copy. A copy that does not exist yet is written and moved as without it.
    type: bool
    default: false
  files:
    description: The files to copy.
    type: list
    elements: dict
    required: true
    suboptions:
      src:
        description: Path of the file on the host.
        type: path
        required: true
      name:
        description: Name of the copy in O(directory).
        type: str
        required: true
      mode:
        description: Mode of the copy, octal.
        type: str
        required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: The diff lists the copies written, never their content.
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Copy the certificate and key for node_exporter
  onprem.llm.file_copies:
    directory: /etc/prometheus/node-exporter-tls
    group: prometheus
    files:
      - {src: /etc/onprem-llm/pki/host.crt, name: server.crt, mode: "0644"}
      - {src: /etc/onprem-llm/pki/host.key, name: server.key, mode: "0640"}
  no_log: true
"""

RETURN = r"""
copied:
  description: The copies written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/prometheus/node-exporter-tls/server.crt]
missing:
  description: Sources that do not exist. Only ever not empty in check mode.
  returned: always
  type: list
  elements: str
"""

import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as source:
            return source.read()
    except FileNotFoundError:
        return None


def _write(
    module: AnsibleModule, path: str, content: bytes, group: str, mode: str, in_place: bool
) -> None:
    if in_place and os.path.isfile(path):
        # The same inode, so that a watch on the file sees the change; owner, group and mode
        # are the copy's already (put right below when they are not).
        with open(path, "r+b") as target:
            target.truncate(0)
            target.write(content)
        return
    # A temporary file beside the copy, with its final owner and mode, moved over it: the
    # service never reads half a key, nor a key it may not read.
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".file_copies.")
    with os.fdopen(handle, "wb") as target:
        target.write(content)
    module.set_group_if_different(temporary, group, False)
    module.set_mode_if_different(temporary, mode, False)
    module.atomic_move(temporary, path, keep_dest_attrs=False)


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    missing = [item["src"] for item in params["files"] if not os.path.isfile(item["src"])]
    if missing and not module.check_mode:
        module.fail_json(
            msg=f"{params['service']} serves TLS with {', '.join(missing)}, which this host does"
            " not have. The pki role makes the host's certificate (site.yml runs it on every host"
            " first); point the role's certificate variables at existing files, or turn its TLS"
            " off.",
            missing=missing,
        )
    changed = False
    directory = params["directory"]
    if not os.path.isdir(directory):
        changed = True
        if not module.check_mode:
            os.makedirs(directory, mode=0o700)
    if os.path.isdir(directory):
        changed = module.set_owner_if_different(directory, "root", changed)
        changed = module.set_group_if_different(directory, params["group"], changed)
        changed = module.set_mode_if_different(directory, params["directory_mode"], changed)
    copied = []
    for item in params["files"]:
        if item["src"] in missing:
            continue
        path = os.path.join(directory, item["name"])
        content = _read(item["src"])
        if content is None:
            module.fail_json(
                msg=f"{item['src']} went away while it was copied", missing=[item["src"]]
            )
        if _read(path) != content:
            copied.append(path)
            if not module.check_mode:
                _write(module, path, content, params["group"], item["mode"], params["in_place"])
        if os.path.exists(path):
            file_changed = module.set_owner_if_different(path, "root", False)
            file_changed = module.set_group_if_different(path, params["group"], file_changed)
            file_changed = module.set_mode_if_different(path, item["mode"], file_changed)
            if file_changed and path not in copied:
                copied.append(path)
        elif module.check_mode and path not in copied:
            copied.append(path)
    result: dict[str, Any] = {
        "changed": changed or bool(copied),
        "copied": copied,
        "missing": missing,
    }
    if module._diff and result["changed"]:
        result["diff"] = {"before": "", "after": "".join(f"{path}\n" for path in copied)}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "service": {"type": "str", "default": "the service"},
            "directory": {"type": "path", "required": True},
            "directory_mode": {"type": "str", "default": "0750"},
            "group": {"type": "str", "required": True},
            "in_place": {"type": "bool", "default": False},
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "src": {"type": "path", "required": True},
                    "name": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
