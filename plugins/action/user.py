# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.user: ansible.builtin.user, answered by one shell command when the
user already exists as asked.

The user module is a Python start on the host for every service user of every run. On Linux, a
user asked present that exists (getent passwd) with the shell, home, comment and primary group
asked, and whose home exists where the module would make a missing one (create_home), is
answered from one shell command: the module would change nothing (system only matters when it
makes the user). Anything else (a user to make or change, any other option or state, a value
the module would expand or convert, async) runs the module with the same arguments.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_MARK = "onprem-llm-user"

# Arguments judged here; any other one set means the module runs.
_JUDGED = frozenset(
    {"name", "user", "state", "system", "create_home", "createhome"}
    | {"shell", "home", "comment", "group"}
)

# A user or group name that getent and the module both look up as a name. A group of digits
# is a gid to both (grp.getgrgid(int(group)) first; getent group looks up digits by gid).
_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.-]*\$?")
_DIGITS = re.compile(r"[0-9]+")


def _bool(value: Any) -> bool | None:
    """value as the module's bool type reads it, or None when it would not take it."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, (str, int, float)):
        return None
    try:
        return boolean(value, strict=True)
    except TypeError:
        return None


def _line(value: Any) -> bool:
    """A str that one line of getent output can hold."""
    return isinstance(value, str) and not set(value) & set("\n\r\0")


def judged_request(args: dict[str, Any]) -> dict[str, Any] | None:
    """What the task asks (name, create_home, and shell, home, comment, group or None), when
    it asks only what this action judges, with values the module takes as they are; else
    None."""
    keys = set(args)
    if keys - _JUDGED or {"name", "user"} <= keys or {"create_home", "createhome"} <= keys:
        return None
    if None in args.values() or args.get("state", "present") != "present":
        return None
    if "system" in args and _bool(args["system"]) is None:
        return None
    name = args.get("name", args.get("user"))
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return None
    create_home = _bool(args.get("create_home", args.get("createhome", True)))
    request: dict[str, Any] = {"name": name, "create_home": create_home}
    for key in ("shell", "home", "comment"):
        value = args.get(key)
        # shell and home are paths to the module: it expands a leading ~ and variables.
        path = key != "comment" and isinstance(value, str) and (value[:1] == "~" or "$" in value)
        if key in args and (not _line(value) or path):
            return None
        request[key] = value
    group = args.get("group")
    if group is not None and not (
        isinstance(group, str) and (_NAME.fullmatch(group) or _DIGITS.fullmatch(group))
    ):
        return None
    request["group"] = group
    return request if create_home is not None else None


def lookup_command(name: str, group: str | None, create_home: bool) -> str:
    """On Linux only: the mark, the user's passwd entry, the group's entry when asked, and
    whether the user's home exists when the module would make a missing one. Exits 1 when
    the user or the group does not exist."""
    steps = [
        '[ "$(uname -s)" = Linux ] || exit 1',
        f"p=$(getent passwd {shlex.quote(name)}) || exit 1",
        f"printf '%s\\npasswd:%s\\n' {_MARK} \"$p\"",
    ]
    if group is not None:
        steps.append(f"g=$(getent group {shlex.quote(group)}) || exit 1")
        steps.append("printf 'group:%s\\n' \"$g\"")
    if create_home:
        # The sixth field of name:password:uid:gid:comment:home:shell.
        steps.append("h=${p#*:*:*:*:*:}; h=${h%:*}")
        steps.append('if [ -e "$h" ]; then echo home:yes; else echo home:no; fi')
    return "; ".join(steps)


def parse_lookup_output(stdout: str) -> dict[str, Any] | None:
    """lookup_command's output read: passwd and group as lists of fields, home as a bool, or
    None when the output is not that."""
    lines = [line.rstrip("\r") for line in stdout.split("\n")]  # a become terminal: \r\n
    if _MARK not in lines:
        return None
    fields_count = {"passwd": 7, "group": 4}
    found: dict[str, Any] = {}
    for line in lines[lines.index(_MARK) + 1 :]:
        if not line:
            continue
        tag, separator, value = line.partition(":")
        if not separator or tag in found:
            return None
        if tag == "home" and value in ("yes", "no"):
            found[tag] = value == "yes"
            continue
        fields = value.split(":")
        if len(fields) != fields_count.get(tag) or not _DIGITS.fullmatch(fields[2]):
            return None
        if tag == "passwd" and not _DIGITS.fullmatch(fields[3]):
            return None
        found[tag] = fields
    return found if "passwd" in found else None


def unchanged_user_result(request: dict[str, Any], found: dict[str, Any]) -> dict[str, Any] | None:
    """The module's result for the user found when it is as asked (the module would change
    nothing), else None."""
    name, _password, uid, gid, comment, home, shell = found["passwd"]
    if name != request["name"]:
        return None
    current = {"shell": shell, "home": home, "comment": comment}
    if any(request[key] not in (None, value) for key, value in current.items()):
        return None
    group = request["group"]
    if group is not None:
        entry = found.get("group")
        if entry is None or int(entry[2]) != int(gid):
            return None
        if entry[0 if _NAME.fullmatch(group) else 2] != group:
            return None
    if request["create_home"] and not (home.startswith("/") and found.get("home") is True):
        return None
    return {
        "changed": False,
        "name": name,
        "state": "present",
        "append": False,
        "move_home": False,
        "uid": int(uid),
        "group": int(gid),
        "comment": comment,
        "home": home,
        "shell": shell,
    }


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.user"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        request = judged_request(args)
        if request is None:
            return None
        command = lookup_command(request["name"], request["group"], request["create_home"])
        read = self.shell_stdout(command)
        found = parse_lookup_output(read) if read is not None else None
        return unchanged_user_result(request, found) if found is not None else None
