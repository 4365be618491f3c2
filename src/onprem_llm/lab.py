"""The local lab: containers on this machine standing in for GPU nodes, gateways and the rest.

`up` runs playbooks/lab_up.yml against localhost (it creates the containers), then site.yml
against inventories/lab; `down` runs playbooks/lab_down.yml; `status` lists the containers
that carry the lab's label.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onprem_llm.api import request_for
from onprem_llm.progress import Progress
from onprem_llm.results import ExitCode, RunResult
from onprem_llm.runner import RunOptions, run_playbook

# playbooks/lab/start_hosts.yml labels every lab container with it.
LAB_LABEL = "onprem-llm.role=lab"
LAB_INVENTORY = "inventories/lab"


class LabError(RuntimeError):
    """The lab's container engine is missing or failed."""


def localhost_inventory() -> str:
    # Inline, so the lab needs no inventory file for the machine it runs on.
    python = sys.executable
    return f"localhost ansible_connection=local ansible_python_interpreter={python}\n"


@dataclass(frozen=True)
class LabResult:
    """The steps of a lab action; the first that fails ends it."""

    action: str
    steps: tuple[RunResult, ...]

    @property
    def exit_code(self) -> ExitCode:
        for step in self.steps:
            if step.exit_code != ExitCode.OK:
                return step.exit_code
        return ExitCode.OK

    @property
    def status(self) -> str:
        for step in self.steps:
            if step.exit_code != ExitCode.OK:
                return step.status
        return "successful"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status,
            "exit_code": int(self.exit_code),
            "steps": [step.to_dict() for step in self.steps],
        }


def lab_up(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> LabResult:
    create = request_for("lab_up", project_dir, options, inventory=(localhost_inventory(),))
    first = run_playbook(create, progress, cancel, plan_progress)
    if first.exit_code != ExitCode.OK:
        return LabResult("lab_up", (first,))
    converge = request_for(
        "deploy", project_dir, options, playbook="site.yml", inventory=(LAB_INVENTORY,)
    )
    return LabResult("lab_up", (first, run_playbook(converge, progress, cancel, plan_progress)))


def lab_down(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> LabResult:
    remove = request_for("lab_down", project_dir, options, inventory=(localhost_inventory(),))
    return LabResult("lab_down", (run_playbook(remove, progress, cancel, plan_progress),))


@dataclass(frozen=True)
class LabContainer:
    name: str
    state: str
    status: str
    image: str
    ports: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _ports(entries: Any) -> str:
    ports = []
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("host_port"):
            host = entry.get("host_ip") or "0.0.0.0"
            container = f"{entry.get('container_port')}/{entry.get('protocol', 'tcp')}"
            ports.append(f"{host}:{entry['host_port']}->{container}")
    return ", ".join(ports)


def parse_podman_ps(output: str) -> list[LabContainer]:
    """Containers from `podman ps --format json`."""
    try:
        entries = json.loads(output or "[]")
    except ValueError as error:
        raise LabError(f"podman ps printed something that is not JSON: {error}") from None
    containers = []
    for entry in entries or ():
        names = entry.get("Names") or [entry.get("Id", "")[:12]]
        containers.append(
            LabContainer(
                name=names[0] if isinstance(names, list) else str(names),
                state=str(entry.get("State", "")),
                status=str(entry.get("Status", "")),
                image=str(entry.get("Image", "")),
                ports=_ports(entry.get("Ports")),
            )
        )
    return sorted(containers, key=lambda container: container.name)


def lab_status(
    podman: str = "podman",
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[LabContainer]:
    """The lab's containers, whatever their state."""
    executable = shutil.which(podman)
    if executable is None:
        raise LabError(
            f"{podman} is not installed or not on PATH; the lab runs its hosts as podman"
            " containers (install podman, or see the README's lab section)"
        )
    command = [executable, "ps", "-a", "--filter", f"label={LAB_LABEL}", "--format", "json"]
    completed = run(command, capture_output=True, text=True, check=False, timeout=60)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        raise LabError(f"podman ps failed (rc {completed.returncode}): {detail}")
    return parse_podman_ps(completed.stdout)
