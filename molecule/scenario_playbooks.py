"""Run a scenario's playbooks from its tests as an operator would: the scenario's inventory, over
ssh, plain output. Importable from every scenario's tests (molecule/ is on their path through
molecule/conftest.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path


def inventory() -> str:
    """The scenario's inventory directory, as molecule passes it: its group_vars and host_vars
    (and any other inventory file in it) come with the hosts."""
    return os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])


def run_playbook(
    playbook: Path, *extra_args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> tuple[str, bool, float]:
    """The output, whether the run succeeded and how many seconds it took."""
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", "-i", inventory(), str(playbook), *extra_args],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
        timeout=timeout,
        check=False,
    )
    return result.stdout + result.stderr, result.returncode == 0, time.monotonic() - started


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RECAP = re.compile(r"^(\S+)\s+: ok=\d+")


def recap_lines(output: str, hosts: list[str]) -> dict[str, str]:
    """The PLAY RECAP line of each host."""
    found = {}
    for line in _ANSI.sub("", output).splitlines():
        match = _RECAP.match(line)
        if match and match.group(1) in hosts:
            found[match.group(1)] = line
    return found


def assert_check_mode_changes_nothing(scenario_dir: Path, hosts: list[str]) -> float:
    """`converge.yml --check` on the converged hosts succeeds and reports no change on any."""
    # Only changes and failures are shown, so that a failure message names the tasks.
    quiet = {"ANSIBLE_DISPLAY_OK_HOSTS": "false", "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "false"}
    output, ok, seconds = run_playbook(
        scenario_dir / "converge.yml", "--check", "--diff", env=quiet
    )
    output = _ANSI.sub("", output)
    assert ok, output[-4000:]
    recaps = recap_lines(output, hosts)
    assert sorted(recaps) == sorted(hosts), output[-3000:]
    changed = [line for line in recaps.values() if " changed=0 " not in line]
    assert not changed, (changed, _changed_tasks(output))
    return seconds


def _changed_tasks(output: str) -> str:
    """The TASK headers and diffs of changed results, from a quiet run's output."""
    blocks = re.split(r"\n(?=TASK \[|RUNNING HANDLER \[)", output)
    return "\n".join(block[:1500] for block in blocks if "\nchanged: " in block)


def evaluate_on_controller(expression: str) -> object:
    """A Jinja expression evaluated on the controller against the scenario's inventory, with no
    facts of any host: what a run limited to other hosts computes."""
    message = "msg={{ " + expression + " }}"
    result = subprocess.run(
        ["ansible", "localhost", "-i", inventory(), "-m", "ansible.builtin.debug", "-a", message],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report, _unused = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
