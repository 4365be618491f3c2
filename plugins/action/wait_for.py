# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.wait_for: ansible.builtin.wait_for, answered by one shell command
when the port already accepts a connection.

The roles wait for their services' ports after starting them, on every run; on a re-run the
service has been up for long, and the module is a Python start on the host to learn it. One TCP
connect from bash (its /dev/tcp) under coreutils `timeout` answers that. Anything else (a port
that does not answer yet, any option besides host, port, timeout and connect_timeout, a host
without bash or timeout) runs the module, which waits, and fails, as it does.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_JUDGED = frozenset({"host", "port", "timeout", "connect_timeout", "state"})
# A name or an IPv4 address: what bash's /dev/tcp/HOST/PORT path takes as it is.
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_MARK = "onprem-llm-port-open"


def connect_command(host: str, port: int, connect_timeout: int) -> str:
    """Prints the mark when one TCP connection to host:port opens within connect_timeout."""
    probe = shlex.quote('exec 3<>"/dev/tcp/$0/$1"')
    return (
        f"timeout {connect_timeout} bash -c {probe} {shlex.quote(host)} {port} 2>/dev/null"
        f" && echo {_MARK}"
    )


def judged_target(args: dict[str, Any]) -> tuple[str, int, int] | None:
    """(host, port, connect timeout) when the task only waits for a port to accept, else None."""
    if set(args) - _JUDGED or args.get("state", "started") != "started":
        return None
    host = str(args.get("host", "127.0.0.1"))
    try:
        port = int(args["port"])
        connect_timeout = int(args.get("connect_timeout", 5))
    except (KeyError, TypeError, ValueError):
        return None
    if not _PLAIN_HOST.match(host) or not 0 < port < 65536 or connect_timeout < 1:
        return None
    return host, port, connect_timeout


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.wait_for"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        target = judged_target(args)
        if target is None:
            return None
        read = self.shell_stdout(connect_command(*target))
        if read is None or read.strip() != _MARK:
            return None
        return {
            "changed": False,
            "elapsed": 0,
            "match_groupdict": {},
            "match_groups": [],
            "path": None,
            "port": target[1],
            "search_regex": None,
            "state": "started",
        }
