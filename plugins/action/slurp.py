# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.slurp: ansible.builtin.slurp, read with one shell command.

The module is a Python start on the host to base64 a file. A readable regular file is read with
`base64` in the host's shell instead; anything else (a missing or unreadable file, a directory,
a host without a POSIX shell or base64, async) runs the module, which gives its own answer or
error.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_MARK = "onprem-llm-slurp"


def read_command(path: str) -> str:
    """Prints the mark, then the file in base64, only for a readable regular file."""
    quoted = shlex.quote(path)
    return f"if [ -f {quoted} ] && [ -r {quoted} ]; then echo {_MARK} && base64 < {quoted}; fi"


def parse_read_output(stdout: str) -> str | None:
    """The file's content in base64 as the module returns it, or None when not read."""
    mark, _newline, encoded = stdout.partition("\n")
    if mark.strip() != _MARK:  # a become terminal ends lines with \r\n
        return None
    try:
        content = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(content).decode("ascii")


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.slurp"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        source = args.get("src", args.get("path"))
        if not isinstance(source, str) or not source or len(args) != 1:
            return None
        read = self.shell_stdout(read_command(source))
        content = parse_read_output(read) if read is not None else None
        if content is None:
            return None
        return {"changed": False, "content": content, "encoding": "base64", "source": source}
