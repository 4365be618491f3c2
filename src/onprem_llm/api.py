"""Python API: run the collection's playbooks from automation, each call returning a RunResult.

from onprem_llm import RunOptions, deploy
result = deploy("/srv/onprem-llm", RunOptions(inventory=("inventories/prod",), limit="gw1"))
if not result.ok:
    for failure in result.failures:
        print(failure.host, failure.task, failure.message)
"""

from __future__ import annotations

import dataclasses
import re
import threading
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onprem_llm.progress import Progress
from onprem_llm.results import RunResult
from onprem_llm.runner import (
    RunOptions,
    RunRequest,
    UsageError,
    run_playbook,
)

# Playbooks each action runs, relative to the project directory.
PLAYBOOKS = {
    "deploy": "site.yml",
    "check": "site.yml",
    "rolling_restart": "playbooks/rolling_restart.yml",
    "validate": "playbooks/validate.yml",
    "lab_up": "playbooks/lab_up.yml",
    "lab_down": "playbooks/lab_down.yml",
    "cache_purge": "playbooks/cache_purge.yml",
    "cache_evict": "playbooks/cache_evict.yml",
    "erase_tenant": "playbooks/erase_tenant.yml",
}


def find_project_dir(path: str | Path | None = None) -> Path:
    """The collection checkout to run from: it must hold site.yml."""
    project = Path(path or Path.cwd()).resolve()
    if not (project / "site.yml").is_file():
        raise UsageError(
            f"--project-dir: {project} has no site.yml"
            " (run from the collection checkout or pass --project-dir)"
        )
    return project


def _inventory_in(project: Path, source: str) -> str:
    if "\n" in source or "," in source or Path(source).is_absolute():
        return source
    candidate = project / source
    return str(candidate) if candidate.exists() else source


def request_for(
    action: str,
    project_dir: str | Path | None,
    options: RunOptions,
    *,
    playbook: str | None = None,
    inventory: tuple[str, ...] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> RunRequest:
    """The RunRequest an action makes; inventories resolve against the project directory."""
    project = find_project_dir(project_dir)
    sources = options.inventory if inventory is None else inventory
    resolved = tuple(_inventory_in(project, source) for source in sources)
    return RunRequest(
        action=action,
        playbook=project / (playbook or PLAYBOOKS[action]),
        project_dir=project,
        options=dataclasses.replace(options, inventory=resolved),
        extra_vars=dict(extra_vars or {}),
    )


def _run(
    action: str,
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None,
    cancel: threading.Event | None,
    plan_progress: bool,
) -> RunResult:
    request = request_for(action, project_dir, options)
    return run_playbook(request, progress, cancel, plan_progress)


def deploy(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Converge the site (site.yml)."""
    return _run("deploy", project_dir, options, progress, cancel, plan_progress)


def check(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """What deploy would change: site.yml in check mode with diffs; changes nothing."""
    options = dataclasses.replace(options, check=True, diff=True)
    return _run("check", project_dir, options, progress, cancel, plan_progress)


def rolling_restart(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Restart or upgrade engines one node at a time, drained at the gateway."""
    return _run("rolling_restart", project_dir, options, progress, cancel, plan_progress)


def validate(
    project_dir: str | Path | None,
    options: RunOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Run the acceptance gates; what the playbook publishes with set_stats is in .data."""
    return _run("validate", project_dir, options, progress, cancel, plan_progress)


# A number of seconds, or of minutes, hours, days or weeks: 3600, 90m, 7d.
DURATION = re.compile(r"[0-9]+[smhdw]?")
_JINJA_MARKERS = ("{{", "{%", "{#")


def _check_name(flag: str, value: str, *, required: bool) -> None:
    """A name passed to the playbook as an extra var: a string without control characters
    and without Jinja markers, which Ansible would evaluate as a template."""
    if not isinstance(value, str):
        raise UsageError(f"{flag}: expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise UsageError(f"{flag}: expected a tenant name, got {value!r}")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise UsageError(f"{flag}: expected a name without control characters, got {value!r}")
    if any(marker in value for marker in _JINJA_MARKERS):
        raise UsageError(
            f"{flag}: expected a name without {{{{, {{% or {{# (Ansible would evaluate it as a"
            f" template), got {value!r}"
        )


def cache_purge_vars(tenant: str, model: str = "", older_than: str | int = "") -> dict[str, str]:
    """The extra vars of playbooks/cache_purge.yml; raises UsageError naming the bad option."""
    _check_name("--tenant", tenant, required=True)
    _check_name("--model", model, required=False)
    if isinstance(older_than, int) and not isinstance(older_than, bool):
        older_than = str(older_than)
    if not isinstance(older_than, str) or not (older_than == "" or DURATION.fullmatch(older_than)):
        raise UsageError(
            "--older-than: expected seconds or a number with s, m, h, d or w"
            f" (3600, 90m, 7d), got {older_than!r}"
        )
    return {
        "cache_purge_tenant": tenant,
        "cache_purge_model": model,
        "cache_purge_older_than": older_than,
    }


def cache_evict(
    project_dir: str | Path | None,
    options: RunOptions,
    request_id: str,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Undo a wrong semantic-cache hit: delete the cached answer the request (by its request id,
    the X-Request-ID of the answer) got, and its place in the vector set, so that neither that
    question nor its neighbours get that answer again. The outcome is in .data["cache_evict"]."""
    if not isinstance(request_id, str) or not request_id or any(c.isspace() for c in request_id):
        raise UsageError(f"REQUEST_ID: expected the X-Request-ID of an answer, got {request_id!r}")
    _check_name("REQUEST_ID", request_id, required=True)
    extra_vars = {"cache_evict_request_id": request_id}
    request = request_for("cache_evict", project_dir, options, extra_vars=extra_vars)
    return run_playbook(request, progress, cancel, plan_progress)


def erase_tenant(
    project_dir: str | Path | None,
    options: RunOptions,
    tenant: str,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
    user: str = "",
) -> RunResult:
    """Remove a tenant's request and content records from every gateway and its cache entries;
    with user, only that user's records (the cache is the tenant's and stays). Counts are in
    .data["erase_records"] (per gateway) and, for a tenant, .data["cache_purge"]."""
    _check_name("--tenant", tenant, required=True)
    _check_name("--user", user, required=False)
    extra_vars = {"erase_tenant": tenant} | ({"erase_user": user} if user else {})
    request = request_for("erase_tenant", project_dir, options, extra_vars=extra_vars)
    return run_playbook(request, progress, cancel, plan_progress)


def cache_purge(
    project_dir: str | Path | None,
    options: RunOptions,
    tenant: str,
    model: str = "",
    older_than: str | int = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Delete a tenant's response-cache entries (one model's with model, only those older than
    older_than, such as "7d", with it). The count is in .data["cache_purge"]["deleted"]."""
    extra_vars = cache_purge_vars(tenant, model, older_than)
    request = request_for("cache_purge", project_dir, options, extra_vars=extra_vars)
    return run_playbook(request, progress, cancel, plan_progress)
