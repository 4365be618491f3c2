# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.engine_health: an instance already healthy, answered by one shell
command.

On a re-run every instance has long been up, and the module is a Python start on the host with
Ansible's module code to learn it. One shell command asks the health URL once, as the module
does (the host's Python, standard library only: no proxy, the chain verified against ca_path,
not the name), then reads the unit with `systemctl show`; the module's own gate decides on the
controller. Healthy on that first look is answered as the module answers it. Anything else (not
healthy yet, a unit that failed or restarts, headers, check mode, an interpreter that cannot
be named plainly, options out of the module's bounds, async) runs the module, which waits,
fails with the unit's journal, or answers as it does.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils._engine_health import (
    HEALTHY,
    SHOW_PROPERTIES,
    HealthGate,
    Observation,
    Probe,
    parse_unit_state,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import (
    ShellFirstAction,
    python_interpreter,
)

_MARK = "onprem-llm-engine-health"
_INTS = {"status_code": 200, "timeout": 900, "delay": 5, "request_timeout": 10}
_INTS |= {"max_restarts": 2, "journal_lines": 30}
# The module's lower bounds (its _check_params): out of them the module fails with its message.
_LEAST = {"timeout": 0, "delay": 1, "request_timeout": 1, "max_restarts": 0, "journal_lines": 0}
_JUDGED = frozenset({"url", "unit", "ca_path", *_INTS})

# Run on the host by its Python (3.6 and later): one GET, as the module's probe() sees it.
PROBE = r"""
import ssl, sys, urllib.error, urllib.request
url, ca_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
handlers = [urllib.request.ProxyHandler({})]
if ca_path:
    context = ssl.create_default_context(cafile=ca_path)
    context.check_hostname = False
    handlers.append(urllib.request.HTTPSHandler(context=context))
try:
    with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as response:
        status = response.status
except urllib.error.HTTPError as err:
    status = err.code
except Exception:
    status = 0
print("%s %d" % (sys.argv[4], status))
"""


def judged_arguments(args: dict[str, Any]) -> dict[str, Any] | None:
    """The task's arguments with the module's defaults, when all are plain and in bounds."""
    if set(args) - _JUDGED:
        return None
    judged: dict[str, Any] = {"ca_path": None, **_INTS, **args}
    url, unit, ca_path = judged.get("url"), judged.get("unit"), judged["ca_path"]
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return None
    if not isinstance(unit, str) or not unit or "\n" in unit:
        return None
    if ca_path is not None and not (isinstance(ca_path, str) and ca_path.startswith("/")):
        return None
    if isinstance(ca_path, str) and ("$" in ca_path or "~" in ca_path):
        return None
    for name in _INTS:
        value = judged[name]
        if isinstance(value, bool) or not str(value).isdigit():
            return None
        judged[name] = int(value)
        if judged[name] < _LEAST.get(name, 0):
            return None
    return judged


def probe_command(interpreter: str, judged: dict[str, Any]) -> str:
    """The health request, then the unit's state, as one shell command."""
    arguments = [judged["url"], judged["ca_path"] or "", str(judged["request_timeout"]), _MARK]
    quoted = " ".join(shlex.quote(argument) for argument in arguments)
    properties = ",".join(SHOW_PROPERTIES)
    return (
        f"{shlex.quote(interpreter)} -c {shlex.quote(PROBE)} {quoted}"
        f" && systemctl show {shlex.quote(judged['unit'])} --property={properties}"
    )


def healthy_answer(judged: dict[str, Any], stdout: str) -> dict[str, Any] | None:
    """The module's answer when its gate finds the instance healthy at the first look."""
    lines = stdout.replace("\r\n", "\n").split("\n")
    marks = [index for index, line in enumerate(lines) if line.startswith(f"{_MARK} ")]
    if len(marks) != 1 or not lines[marks[0]].split(" ")[1].isdigit():
        return None
    status = int(lines[marks[0]].split(" ")[1])
    state = parse_unit_state("\n".join(lines[marks[0] + 1 :]))
    gate = HealthGate(
        timeout=judged["timeout"],
        max_restarts=judged["max_restarts"],
        status_code=judged["status_code"],
    )
    probe = Probe(status=status) if status else Probe(error="no answer")
    decision = gate.observe(Observation(elapsed=0.0, probe=probe, unit=state))
    if decision.outcome != HEALTHY:
        return None
    return {
        "changed": False,
        "status": status,
        "elapsed": 0,
        "restarts": decision.restarts,
        "unit_state": state.as_dict(),
        "msg": f"{judged['unit']} healthy at {judged['url']}",
    }


class ActionModule(ShellFirstAction):
    module = "onprem.llm.engine_health"

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._interpreter = python_interpreter(self, task_vars or {})
        return super().run(tmp, task_vars)

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        judged = judged_arguments(args)
        interpreter = getattr(self, "_interpreter", None)
        if judged is None or interpreter is None or self._play_context.check_mode:
            return None
        if self._compute_environment_string():
            return None
        # On stdin: a command alone would get a terminal with become over ssh.
        run = self._low_level_execute_command(
            "/bin/sh", in_data=probe_command(interpreter, judged).encode("utf-8"), sudoable=True
        )
        if run.get("rc") != 0:
            return None
        return healthy_answer(judged, str(run.get("stdout", "")))
