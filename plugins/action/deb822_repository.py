# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.deb822_repository: ansible.builtin.deb822_repository, answered by
one shell command when the sources file is already right.

The module is a Python start on the host (and needs python3-debian there) to write a few lines.
For the arguments the roles give (name, types, uris, suites, components, architectures, a
signed_by key file that exists, state present), the file the module would write is rendered
here as the module renders it, and the host's file is read with one shell command (coreutils
stat, base64): the same content, mode 0644 and the command's own user as owner answer
unchanged, with the module's keys. Anything else (a change, a link, a key that is not a file,
any other option, state absent, a value the module would write on several lines, async) runs
the module with the task's arguments unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_file import (
    parse_regular_file,
    path_info,
    regular_file_command,
)

SOURCES_DIR = "/etc/apt/sources.list.d"
# The module's mode for the file when the task gives none.
SOURCES_MODE = 0o644
_LISTS = ("architectures", "components", "suites", "types", "uris")
_JUDGED = frozenset({*_LISTS, "name", "signed_by", "state"})
# The module's field names; it writes the fields in the order of its option names, sorted.
_FIELDS = {
    "architectures": "Architectures",
    "components": "Components",
    "name": "X-Repolib-Name",
    "signed_by": "Signed-By",
    "suites": "Suites",
    "types": "Types",
    "uris": "URIs",
}
_TYPES = frozenset({"deb", "deb-src"})


def sources_slug(name: str) -> str:
    """The module's file name stem for a repository name."""
    return re.sub(r"[^a-z0-9-]+", "", re.sub(r"[_\s]+", "-", name.lower()))


def _plain(value: Any) -> bool:
    """A non-empty value the module writes on one line as it is."""
    return isinstance(value, str) and value != "" and value.isprintable()


def judged_values(args: dict[str, Any]) -> dict[str, str] | None:
    """Each field's value as the module writes it, by option name, when the task asks only what
    this action judges; else None. types defaults to deb, as in the module."""
    if set(args) - _JUDGED or args.get("state", "present") != "present":
        return None
    values: dict[str, str] = {}
    for option in _LISTS:
        items = args.get(option, ["deb"] if option == "types" else None)
        if items is None:
            continue
        if not isinstance(items, list) or not items or not all(_plain(item) for item in items):
            return None
        values[option] = " ".join(items)
    if not set(args.get("types", ["deb"])) <= _TYPES:
        return None
    name, signed_by = args.get("name"), args.get("signed_by")
    if not _plain(name) or not sources_slug(name):
        return None
    values["name"] = name
    if signed_by is not None:
        # A key file the module names as it is; a URL or key data is the module's to handle.
        if not _plain(signed_by) or not signed_by.startswith("/"):
            return None
        values["signed_by"] = signed_by
    return values


def render_sources(values: dict[str, str]) -> str:
    """The deb822 file the module writes for these values (python-debian's Deb822.dump)."""
    return "".join(f"{_FIELDS[option]}: {values[option]}\n" for option in sorted(values))


def read_command(path: str, key_file: str | None) -> str:
    """The sources file's stat, link count, then the command's user id and the file in base64;
    it fails when key_file is given and is not a file (the module then writes other keys)."""
    key_test = f"[ -f {shlex.quote(key_file)} ] && " if key_file is not None else ""
    return regular_file_command(path, f"{key_test}id -u && base64 < {shlex.quote(path)}")


def unchanged_answer(path: str, values: dict[str, str], stdout: str) -> dict[str, Any] | None:
    """The module's answer when the read file is the one it would write, else None."""
    read = parse_regular_file(path, stdout)
    if read is None or len(read[1]) < 1 or not read[1][0].isdigit():
        return None
    status, lines = read
    try:
        content = base64.b64decode("".join(lines[1:]), validate=True)
    except (binascii.Error, ValueError):
        return None
    repo = render_sources(values)
    if (
        content != repo.encode("utf-8")
        or int(status["mode"], 8) != SOURCES_MODE
        or status["uid"] != int(lines[0])
    ):
        return None
    return {
        "changed": False,
        "repo": repo,
        "dest": path,
        "key_filename": values.get("signed_by"),
        **path_info(status),
    }


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.deb822_repository"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        values = judged_values(args)
        if values is None:
            return None
        path = f"{SOURCES_DIR}/{sources_slug(values['name'])}.sources"
        read = self.shell_stdout(read_command(path, values.get("signed_by")))
        return unchanged_answer(path, values, read) if read is not None else None
