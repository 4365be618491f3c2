#!/usr/bin/python
# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module onprem.llm.engine_flags: check engine flags against the engine that runs them."""

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_flags
short_description: Check the flags an engine will get against its own argument list
version_added: 0.1.0
description:
  - Reads the argument list of the installed engine (the output of O(help_command), for example
    C(python -m vllm.entrypoints.openai.api_server --help) in the engine's venv, or the image run
    with C(--help)) and compares the flags in O(wanted) with it, before the engine's units are
    written.
  - A flag the engine lacks fails the task with one message naming the flag, the engine version
    and the variable that asked for it, instead of a unit that restarts in a loop on the
    engine's C(unrecognized arguments) error.
  - Flags listed in O(optional) are not failures; they come back in RV(dropped), and the caller
    leaves them out of the command line.
  - The list is read once per engine version and kept in O(cache_dir) (reading C(--help) of vLLM
    imports torch and takes tens of seconds); later runs read the file.
  - Where the list is already kept, the action runs O(version_command) and reads the file with
    shell commands and checks the flags on the controller; the module runs only to read
    C(--help), or to fail.
author:
  - onprem.llm maintainers (@onprem-llm)
options:
  engine:
    description: Name of the engine for messages, for example V(vLLM).
    type: str
    required: true
  help_command:
    description: Command that prints the engine's argument list and exits 0.
    type: list
    elements: str
    required: true
  version_command:
    description:
      - Command that prints the engine's version; its output names the version in messages and
        keys the cache. Without it O(identity) alone does.
    type: list
    elements: str
  identity:
    description:
      - What else identifies the engine build, for example the image reference pinned by digest
        or the venv path.
    type: str
    default: ""
  wanted:
    description: The flags the engine will get, each mapped to the variable that asks for it.
    type: dict
    required: true
  arguments:
    description:
      - Free-form engine arguments, keyed by the variable that holds them, for example
        C(engine_extra_args) mapped to C([--max-num-seqs, 64, --enable-prefix-caching]).
        Every option among them (C(--flag), C(--flag=value), C(-O3)) must be one the engine
        knows.
    type: dict
    default: {}
  optional:
    description: Flags that are left out, not refused, when the engine lacks them.
    type: list
    elements: str
    default: []
  cache_dir:
    description: Directory holding one argument list per engine version.
    type: path
    required: true
  timeout:
    description: Seconds O(help_command) may take.
    type: int
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      In check mode the list is read but not written to O(cache_dir); when the engine is not
      installed yet or does not answer (a fresh host in check mode, an image not loaded yet)
      nothing is checked and RV(checked) is false.
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: posix
seealso:
  - module: onprem.llm.engine_health
"""

EXAMPLES = r"""
- name: Check the vLLM flags against the installed version
  onprem.llm.engine_flags:
    engine: vLLM
    help_command:
      - /opt/onprem-llm/engine/venv/bin/python
      - -m
      - vllm.entrypoints.openai.api_server
      - --help=all
    version_command:
      - /opt/onprem-llm/engine/venv/bin/python
      - -c
      - import importlib.metadata as m; print(m.version("vllm"))
    wanted:
      --tensor-parallel-size: engine_tensor_parallel_size
      --shutdown-timeout: engine_shutdown_grace_seconds
    arguments:
      engine_extra_args: [--max-num-seqs, "64"]
    optional: [--shutdown-timeout]
    cache_dir: /var/lib/onprem-llm/engine/flags
"""

RETURN = r"""
checked:
  description: Whether the flags were compared with the engine's list.
  returned: always
  type: bool
version:
  description: Output of O(version_command), or O(identity).
  returned: always
  type: str
dropped:
  description: Optional flags the engine lacks, to leave out of its command line.
  returned: always
  type: list
  elements: str
flags:
  description: Number of options in the engine's argument list.
  returned: when checked
  type: int
"""

import json
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.onprem.llm.plugins.module_utils._engine_flags import (
    cache_name,
    check,
    dropped_warnings,
    failure_message,
    parse_help,
    wanted_flags,
)


def read_version(module: AnsibleModule) -> str | None:
    command = module.params["version_command"]
    if not command:
        return module.params["identity"]
    if not os.path.exists(command[0]):
        return None
    rc, out, err = module.run_command(
        command, environ_update={"LC_ALL": "C.UTF-8"}, errors="surrogate_then_replace"
    )
    if rc != 0:
        module.fail_json(msg=f"{' '.join(command)} failed: {(err or out).strip()}", rc=rc)
    return out.strip()


def read_flags(module: AnsibleModule, cache_file: str) -> tuple[list[str] | None, bool]:
    """The engine's options and whether the cache was written now."""
    if os.path.isfile(cache_file):
        with open(cache_file, encoding="utf-8") as handle:
            return json.load(handle)["flags"], False
    command = module.params["help_command"]
    if module.check_mode and not os.path.exists(command[0]) and "/" in command[0]:
        return None, False
    # coreutils' timeout, so that an engine that hangs on import cannot hold the run.
    limit = module.get_bin_path("timeout")
    runner = [limit, str(module.params["timeout"])] if limit else []
    rc, out, err = module.run_command(
        runner + command,
        environ_update={"LC_ALL": "C.UTF-8", "COLUMNS": "120", "HF_HUB_OFFLINE": "1"},
        errors="surrogate_then_replace",
    )
    flags = parse_help(out)
    if (rc != 0 or not flags) and module.check_mode:
        # The install it depends on (a venv, a loaded image) was only predicted.
        return None, False
    if rc != 0 or not flags:
        module.fail_json(
            msg=f"could not read the argument list of {module.params['engine']}: "
            f"{' '.join(command)} exited {rc}",
            stdout=out[-4000:],
            stderr=err[-4000:],
        )
    if module.check_mode:
        return flags, False
    os.makedirs(os.path.dirname(cache_file), mode=0o755, exist_ok=True)
    temporary = cache_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"command": command, "flags": flags}, handle, indent=1)
    os.replace(temporary, cache_file)
    return flags, True


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    version = read_version(module)
    if version is None:
        # Check mode on a host where the engine is not installed yet.
        return {"changed": False, "checked": False, "version": "", "dropped": []}
    engine = f"{params['engine']} {version}".strip()
    cache_file = os.path.join(
        params["cache_dir"], cache_name(params["engine"], params["identity"], version)
    )
    flags, written = read_flags(module, cache_file)
    if flags is None:
        return {"changed": False, "checked": False, "version": version, "dropped": []}
    wanted = wanted_flags(params["wanted"], params["arguments"])
    result = check(wanted, params["optional"], flags)
    if result.missing:
        module.fail_json(msg=failure_message(result, engine), version=version)
    for warning in dropped_warnings(result, wanted, engine):
        module.warn(warning)
    return {
        "changed": written,
        "checked": True,
        "version": version,
        "dropped": result.dropped,
        "flags": len(flags),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "engine": {"type": "str", "required": True},
            "help_command": {"type": "list", "elements": "str", "required": True},
            "version_command": {"type": "list", "elements": "str"},
            "identity": {"type": "str", "default": ""},
            "wanted": {"type": "dict", "required": True},
            "arguments": {"type": "dict", "default": {}},
            "optional": {"type": "list", "elements": "str", "default": []},
            "cache_dir": {"type": "path", "required": True},
            "timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
