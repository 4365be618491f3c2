# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.package_lists: the host's package state read once per run.

Every role asks, before its install, whether its packages are already there. On a run that
changes nothing that is one module call per role and host, each paying the interpreter and
module start on the host for one dpkg-query. Here the first call on a host also returns the
state of every package, kept on the controller in the run's own temporary directory (Ansible's
local tmp, made for each ansible-playbook process and removed when it ends); later calls of the
same run whose packages that state shows installed are answered on the controller. The first
call reads that state with one dpkg-query in the host's shell, and answers on the controller when
it shows every package installed; only otherwise does the module start on the host. Anything
else (a package missing or at another version, a `>=` entry that only dpkg compares) runs the
module, and a call whose packages are not all installed drops the state, since the install
that follows changes it.

The state is not a host fact: facts are copied and cleaned for every task of the host, printed
with -v and kept by fact caches, and a thousand packages' versions are too much for that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import tempfile
from typing import Any

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible_collections.onprem.llm.plugins.module_utils._package_lists import (
    DPKG_QUERY_FORMAT,
    held_packages,
    not_installed,
    package_names,
    parse_dpkg_status,
    parse_madison,
    pattern_pins,
    settled_pins,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import posix_shell

STATE_DIRECTORY = "onprem-llm-package-state"
INSTALLED_REASON = "every package is installed at a version it accepts"
FROM_STATE_REASON = f"{INSTALLED_REASON} (package state read earlier this run)"
# The module's own read of every package, as one shell command; its output is the state.
READ_STATE_COMMAND = "LC_ALL=C dpkg-query --show --showformat=" + shlex.quote(DPKG_QUERY_FORMAT)
_OFFERED_MARK = "onprem-llm-offered-versions"


def state_file(run_directory: str, host: str) -> str:
    """Where one host's package state is kept for the run whose local tmp is run_directory."""
    name = hashlib.sha256(host.encode()).hexdigest()[:32]
    return os.path.join(run_directory, STATE_DIRECTORY, f"{name}.json")


def load_state(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as kept:
            state = json.load(kept)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def save_state(path: str, state: dict[str, Any] | None) -> None:
    """Keep `state` for the run's later calls, or forget it (None). Written whole or not at all."""
    if state is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as written:
        json.dump(state, written)
    os.replace(partial, path)


def parse_state(stdout: str) -> dict[str, Any] | None:
    """The package state from READ_STATE_COMMAND's output, or None when it lists nothing."""
    installed = parse_dpkg_status(stdout)
    return {"installed": installed, "held": held_packages(stdout)} if installed else None


def pattern_names(packages: list[str]) -> list[str]:
    """The names of `name=version-pattern` entries (nvidia-open=580.126.09-*)."""
    names = []
    for entry in packages:
        name, equals, version = entry.strip().partition("=")
        if equals and any(magic in version for magic in "*?[") and name and name not in names:
            names.append(name)
    return names


def read_command(packages: list[str]) -> str:
    """READ_STATE_COMMAND, then the versions the lists offer of the pattern entries' packages."""
    names = pattern_names(packages)
    if not names:
        return READ_STATE_COMMAND
    quoted = " ".join(shlex.quote(name) for name in names)
    return (
        f"{READ_STATE_COMMAND} && echo {_OFFERED_MARK}"
        f" && LC_ALL=C apt-cache madison {quoted} 2>/dev/null"
    )


def parse_read(stdout: str) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """The package state and the offered versions from read_command's output."""
    # A become terminal ends lines with \r\n.
    status, _mark, offered = stdout.replace("\r\n", "\n").partition(f"{_OFFERED_MARK}\n")
    return parse_state(status), parse_madison(offered)


def answer_from_state(
    packages: list[str], state: Any, offered: dict[str, list[str]] | None = None
) -> dict[str, Any] | None:
    """The module's result for `packages` from this run's package state, or None to ask the host.

    `name` and `name=version` entries are judged here, and with the versions the lists offer
    (`offered`) a `name=pattern` entry whose installed version is the only one matching; `>=`
    needs dpkg's version order, and so does a pattern that another offered version matches.
    """
    if not isinstance(state, dict) or not isinstance(state.get("installed"), dict):
        return None
    if any(">" in entry or "<" in entry for entry in packages):
        return None
    pending = not_installed(packages, state["installed"], lambda _version, _wanted: False)
    if pending and offered is not None:
        # Any other offered version matching a pattern counts as newer: the module decides it.
        pins = pattern_pins(pending, state["installed"])
        settled = settled_pins(pins, state["installed"], offered, lambda _version, _current: True)
        pending = [entry for entry in pending if entry.split("=", 1)[0].strip() not in settled]
    if pending:
        return None
    bare_names = {name.split(":", 1)[0] for name in package_names(packages)}
    return {
        "changed": False,
        "installed": True,
        "held": [name for name in state.get("held", []) if name in bare_names],
        "cache_updated": False,
        "reason": FROM_STATE_REASON,
        "missing": [],
    }


def state_after(result: dict[str, Any]) -> dict[str, Any] | None:
    """The package state to keep after a module call (taken out of its result): None, to drop
    it, when something will be installed."""
    package_state = result.pop("package_state", None)
    if not result.get("installed") or not isinstance(package_state, dict):
        return None
    return package_state


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        module_args = dict(self._task.args)
        packages = [str(entry) for entry in module_args.get("packages") or []]
        host = task_vars.get("inventory_hostname")
        # A delegated task reads another host: no state then.
        path = (
            state_file(C.DEFAULT_LOCAL_TMP, str(host))
            if host and not self._task.delegate_to and C.DEFAULT_LOCAL_TMP
            else None
        )

        answer = answer_from_state(packages, load_state(path)) if path else None
        if answer is not None:
            result.update(answer)
            return result
        if path and posix_shell(self):
            read = self._low_level_execute_command(read_command(packages), sudoable=True)
            state, offered = (
                parse_read(str(read.get("stdout", ""))) if read.get("rc") == 0 else (None, {})
            )
            answer = answer_from_state(packages, state, offered)
            if answer is not None:
                save_state(path, state)
                result.update(answer, reason=INSTALLED_REASON)
                return result

        if path:
            module_args["report_state"] = True
        result.update(
            self._execute_module(
                module_name="onprem.llm.package_lists", module_args=module_args, task_vars=task_vars
            )
        )
        if path and not result.get("failed"):
            save_state(path, state_after(result))
        result.pop("package_state", None)
        return result
