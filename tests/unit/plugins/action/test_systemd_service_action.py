"""onprem.llm.systemd_service run by ansible-playbook on localhost.

`systemctl` is a stand-in on PATH that prints what systemd 252 (Debian 12) prints for
`systemctl --no-pager show --property=LoadState,ActiveState,UnitFileState,NeedDaemonReload
-- UNIT`, from a state file, and refuses any other use. The systemd_service module is replaced
by one that fails (a module of that name in the play's library path, which
ansible.legacy.systemd_service resolves to first): a run that passes made no module call.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.systemd_service import (
    already_as_asked,
    judged_arguments,
    parse_show,
)

from tests.unit.conftest import run_local_play

# Recorded on Debian 12 (systemd 252.39-1~deb12u2) for a running, enabled unit and an unknown
# one; the stand-in prints the unit's entry of the state file in this format.
RUNNING = {
    "LoadState": "loaded",
    "ActiveState": "active",
    "UnitFileState": "enabled",
    "NeedDaemonReload": "no",
}
NOT_FOUND = {
    "LoadState": "not-found",
    "ActiveState": "inactive",
    "UnitFileState": "",
    "NeedDaemonReload": "no",
}

SYSTEMCTL_STAND_IN = """#!/bin/sh
# Stand-in for systemctl show (test only): the unit's properties from $SYSTEMCTL_STATE.
[ "$1" = --no-pager ] && [ "$2" = show ] \\
  && [ "$3" = --property=LoadState,ActiveState,UnitFileState,NeedDaemonReload ] \\
  && [ "$4" = -- ] && [ $# -eq 5 ] || { echo "systemctl stand-in: unexpected: $*" >&2; exit 64; }
exec python3 -c 'import json, sys
units = json.load(open(sys.argv[1]))
unit = sys.argv[2] if "." in sys.argv[2] else sys.argv[2] + ".service"
state = units.get(unit, {"LoadState": "not-found", "ActiveState": "inactive",
                         "UnitFileState": "", "NeedDaemonReload": "no"})
for name in ("LoadState", "ActiveState", "UnitFileState", "NeedDaemonReload"):
    print(f"{name}={state[name]}")' "$SYSTEMCTL_STATE" "$5"
"""


def run_play(
    tmp_path: Path,
    units: dict[str, dict[str, str]],
    tasks: list[dict[str, Any]],
    *args: str,
    systemctl: str = SYSTEMCTL_STAND_IN,
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text(systemctl)
    (bin_dir / "systemctl").chmod(0o755)
    (tmp_path / "units.json").write_text(json.dumps(units))
    return run_local_play(
        tmp_path,
        tasks,
        *args,
        failing_modules=("systemd_service",),
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SYSTEMCTL_STATE": str(tmp_path / "units.json"),
        },
    )


def start(name: str = "chrony", **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Start {name}",
        "onprem.llm.systemd_service": {"name": name, "state": "started", "enabled": True, **extra},
        "register": "started",
    }


SHOW = {"name": "Show the result", "ansible.builtin.debug": {"var": "started"}}


@pytest.mark.parametrize("mode", [[], ["--check"]])
def test_a_unit_already_as_asked_is_answered_without_the_module(
    tmp_path: Path, mode: list[str]
) -> None:
    result = run_play(tmp_path, {"chrony.service": RUNNING}, [start(), SHOW], *mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=2    changed=0" in result.stdout
    assert '"ActiveState": "active"' in result.stdout
    assert '"enabled": true' in result.stdout and '"state": "started"' in result.stdout


@pytest.mark.parametrize(
    ("units", "task"),
    [
        ({"chrony.service": {**RUNNING, "ActiveState": "inactive"}}, start()),
        ({"chrony.service": {**RUNNING, "ActiveState": "deactivating"}}, start()),
        ({"chrony.service": {**RUNNING, "ActiveState": "failed"}}, start()),
        ({"chrony.service": {**RUNNING, "UnitFileState": "disabled"}}, start()),
        ({"chrony.service": {**RUNNING, "UnitFileState": "enabled-runtime"}}, start()),
        ({"chrony.service": {**RUNNING, "NeedDaemonReload": "yes"}}, start()),
        ({"chrony.service": NOT_FOUND}, start()),
        ({"chrony.service": RUNNING}, start(daemon_reload=True)),
        ({"chrony.service": RUNNING}, start(masked=False)),
        ({"chrony.service": RUNNING}, start(state="restarted")),
        ({"chrony.service": RUNNING}, start(enabled=False)),
        ({"chrony.service": RUNNING}, start(state="stopped")),
        ({"chrony.service": RUNNING}, start(scope="user")),
        ({"chrony.service": RUNNING}, start(name="chrony; true")),
    ],
    ids=[
        "inactive",
        "deactivating",
        "failed",
        "disabled",
        "enabled-runtime",
        "needs-daemon-reload",
        "not-found",
        "daemon-reload",
        "masked",
        "restarted",
        "enabled-false",
        "stopped-but-running",
        "user-scope",
        "shell-in-name",
    ],
)
def test_anything_else_goes_to_the_module(
    tmp_path: Path, units: dict[str, dict[str, str]], task: dict[str, Any]
) -> None:
    result = run_play(tmp_path, units, [task])
    assert result.returncode != 0
    assert "the systemd_service module was called" in result.stdout, result.stdout


def test_a_stopped_unit_asked_stopped_is_answered(tmp_path: Path) -> None:
    units = {"redis-tls.service": {**RUNNING, "ActiveState": "inactive"}}
    task = {"onprem.llm.systemd_service": {"name": "redis-tls", "state": "stopped"}}
    result = run_play(tmp_path, units, [task])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=1    changed=0" in result.stdout


def test_the_stand_in_refuses_what_systemctl_show_would_not_be_asked(tmp_path: Path) -> None:
    run_play(tmp_path, {"chrony.service": RUNNING}, [])
    refused = subprocess.run(
        [str(tmp_path / "bin" / "systemctl"), "is-active", "chrony"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMCTL_STATE": str(tmp_path / "units.json")},
    )
    assert refused.returncode == 64 and "unexpected" in refused.stderr


def test_a_failing_systemctl_sends_the_task_to_the_module(tmp_path: Path) -> None:
    """systemd offline (a chroot, a container without it): the module decides."""
    offline = "#!/bin/sh\necho 'System has not been booted with systemd' >&2\nexit 1\n"
    result = run_play(tmp_path, {"chrony.service": RUNNING}, [start()], systemctl=offline)
    assert result.returncode != 0
    assert "the systemd_service module was called" in result.stdout, result.stdout


def test_parse_and_judge() -> None:
    shown = parse_show("LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n")
    assert not already_as_asked({"state": "started", "enabled": True}, shown)  # one missing
    shown["NeedDaemonReload"] = "no"
    assert already_as_asked({"state": "started", "enabled": True}, shown)
    assert already_as_asked({"state": None, "enabled": True}, shown)
    assert judged_arguments({"name": "x", "enabled": "yes"}) == {
        "name": "x",
        "state": None,
        "enabled": True,
    }
    assert judged_arguments({"name": "x", "daemon_reload": "false", "state": "started"})
    assert judged_arguments({"name": "x"}) is None  # nothing asked: the module's error
    assert judged_arguments({"name": "x", "enabled": "maybe"}) is None
    assert judged_arguments({"name": "x", "no_block": True, "state": "started"}) is None
