"""Run one playbook through ansible-runner.

Each run gets a fresh private data dir (ansible-runner writes env files there and never removes
them), removed afterwards unless kept; artifacts go to a persistent directory under a unique
ident and are rotated. Secrets: see onprem_llm.secrets.

Every run is recorded by the onprem.llm.audit_log callback, enabled beside the callbacks the
project's ansible.cfg or the environment already enable. Its records go to the file plain
ansible-playbook runs use (ONPREM_LLM_AUDIT_LOG, else the ansible.cfg path, else
~/.ansible/onprem-llm-audit.jsonl), so both kinds of run share one chain: not to the private
data dir, which is removed, nor to the artifacts, which are rotated.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_runner.interface import init_runner

from onprem_llm.events import EventTracker, count_planned_results
from onprem_llm.progress import NullProgress, Progress
from onprem_llm.results import (
    STATUS_CANCELED,
    STATUS_SUCCESSFUL,
    STATUS_TIMEOUT,
    RunResult,
    decide_exit_code,
)
from onprem_llm.secrets import VaultPassword, redact_env

ARTIFACT_DIR_ENV = "ONPREM_LLM_ARTIFACT_DIR"
AUDIT_CALLBACK = "onprem.llm.audit_log"
AUDIT_LOG_ENV = "ONPREM_LLM_AUDIT_LOG"
DEFAULT_AUDIT_LOG = "~/.ansible/onprem-llm-audit.jsonl"
DEFAULT_ROTATE_ARTIFACTS = 20
# How often ansible-runner polls for cancellation while the playbook is quiet.
_POLL_SECONDS = 1


class UsageError(ValueError):
    """A request that cannot run; nothing was started."""


def default_artifact_root() -> Path:
    if os.environ.get(ARTIFACT_DIR_ENV):
        return Path(os.environ[ARTIFACT_DIR_ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "onprem-llm" / "artifacts"


@dataclass(frozen=True)
class RunOptions:
    """ansible-playbook options shared by every action. Inventories are paths (relative to
    the project directory or absolute), inline INI text, or host lists such as "localhost,"."""

    inventory: tuple[str, ...] = ()
    limit: str | None = None
    tags: str | None = None
    skip_tags: str | None = None
    check: bool = False
    diff: bool = False
    extra_vars_files: tuple[Path, ...] = ()
    vault: VaultPassword | None = None
    forks: int | None = None
    timeout: int | None = None
    artifact_root: Path | None = None
    rotate_artifacts: int = DEFAULT_ROTATE_ARTIFACTS
    keep_private_data_dir: bool = False


@dataclass(frozen=True)
class RunRequest:
    """Everything one ansible-playbook run needs: the action's playbook and its options.

    extra_vars are the action's own variables: ansible-runner hands them to ansible-playbook as
    one JSON `-e` argument, after the user's extra-vars files, so they win over them. They are
    in the child's argv and the `command` artifact, so never put secrets there.
    """

    action: str
    playbook: Path
    project_dir: Path
    options: RunOptions
    ident: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    extra_vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def artifact_root(self) -> Path:
        return self.options.artifact_root or default_artifact_root()


def new_ident(action: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{action.replace('_', '-')}-{uuid.uuid4().hex[:6]}"


def _check(request: RunRequest) -> None:
    if not request.playbook.is_file():
        raise UsageError(f"playbook: {request.playbook} does not exist")
    for path in request.options.extra_vars_files:
        if not path.is_file():
            raise UsageError(f"--extra-vars: {path} is not a file")
    if not request.options.inventory:
        raise UsageError("--inventory: at least one inventory is required")
    if request.options.rotate_artifacts < 0:
        raise UsageError("--rotate-artifacts: must be 0 (keep all) or more")
    if request.options.timeout is not None and request.options.timeout <= 0:
        raise UsageError("--timeout: must be greater than 0")


def _inventories(request: RunRequest, private_dir: Path) -> list[str]:
    """Paths made absolute; inline inventory text written into the private data dir."""
    sources = []
    for index, source in enumerate(request.options.inventory):
        path = Path(source)
        if "\n" in source:
            inline = private_dir / "inventory" / f"inline_{index}.ini"
            inline.parent.mkdir(mode=0o700, exist_ok=True)
            inline.write_text(source)
            sources.append(str(inline))
        elif path.exists():
            sources.append(str(path.resolve()))
        elif "," in source:
            sources.append(source)  # an ad-hoc host list such as "localhost,"
        else:
            raise UsageError(f"--inventory: {source} does not exist")
    return sources


def _cmdline(request: RunRequest) -> list[str]:
    args = []
    if request.options.vault is not None:
        args += request.options.vault.cmdline_args()
    if request.options.check:
        args.append("--check")
    if request.options.diff:
        args.append("--diff")
    for path in request.options.extra_vars_files:
        args += ["-e", f"@{path.resolve()}"]
    return args


def _child_env(request: RunRequest) -> dict[str, str]:
    env: dict[str, str] = {}
    # Use the ansible-playbook installed beside this Python, as in a venv that is not activated.
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, path]))
    collections = request.project_dir / "collections"
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ and collections.is_dir():
        defaults = ["~/.ansible/collections", "/usr/share/ansible/collections"]
        env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([str(collections), *defaults])
    if "ANSIBLE_NOCOLOR" not in os.environ and "ANSIBLE_FORCE_COLOR" not in os.environ:
        env["ANSIBLE_NOCOLOR"] = "1"
    env.update(request.env)
    env.update(_audit_env({**os.environ, **env}, request.project_dir))
    return env


def _ansible_cfg(env: Mapping[str, str], project_dir: Path) -> configparser.ConfigParser:
    """The ansible.cfg that ansible-playbook, run in the project dir, reads (Ansible's order)."""
    candidates = []
    if env.get("ANSIBLE_CONFIG"):
        path = Path(env["ANSIBLE_CONFIG"]).expanduser()
        candidates.append(path / "ansible.cfg" if path.is_dir() else path)
    candidates += [project_dir / "ansible.cfg", Path("~/.ansible.cfg").expanduser()]
    candidates.append(Path("/etc/ansible/ansible.cfg"))
    config = configparser.ConfigParser(inline_comment_prefixes=(";",))
    for path in candidates:
        if path.is_file():
            with contextlib.suppress(OSError, configparser.Error):  # ansible-playbook reports it
                config.read(path)
            break
    return config


def _audit_env(env: Mapping[str, str], project_dir: Path) -> dict[str, str]:
    """Enable the audit callback on top of the callbacks the run enables anyway."""
    config = _ansible_cfg(env, project_dir)
    try:
        enabled = env.get("ANSIBLE_CALLBACKS_ENABLED")
        if enabled is None:
            enabled = config.get("defaults", "callbacks_enabled", fallback="")
        has_path = config.has_option("callback_audit_log", "path")
    except configparser.Error:
        enabled, has_path = env.get("ANSIBLE_CALLBACKS_ENABLED", ""), False
    names = [name.strip() for name in enabled.split(",") if name.strip()]
    audit = {"ANSIBLE_CALLBACKS_ENABLED": ",".join(dict.fromkeys([*names, AUDIT_CALLBACK]))}
    if not env.get(AUDIT_LOG_ENV) and not has_path:
        audit[AUDIT_LOG_ENV] = str(Path(DEFAULT_AUDIT_LOG).expanduser())
    return audit


def _redact_command_artifact(status: dict[str, Any], runner_config: Any) -> None:
    """ansible-runner records the child's whole environment in artifacts/<ident>/command."""
    if status.get("status") != "running":
        return
    path = Path(runner_config.artifact_dir) / "command"
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    recorded["env"] = redact_env(recorded.get("env") or {})
    path.write_text(json.dumps(recorded))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


class _Run:
    """State shared by the callbacks of one run."""

    def __init__(self, progress: Progress, cancel: threading.Event | None) -> None:
        self.progress = progress
        self.cancel = cancel
        self.tracker = EventTracker()

    def on_event(self, event: dict[str, Any]) -> bool:
        update = self.tracker.handle(event)
        if update is not None:
            self.progress.update(update, self.tracker)
        return True

    def canceled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def _start(kwargs: dict[str, Any], secret_env: set[str]) -> Any:
    runner = init_runner(**kwargs)
    for name in secret_env:
        runner.config.env.pop(name, None)
    return runner


def _planned_results(kwargs: dict[str, Any], private_dir: Path, secret_env: set[str]) -> int | None:
    """Host x task results the run will report, for the progress bar; None if unknown."""
    listing = dict(kwargs)
    listing.update(
        cmdline=f"{kwargs['cmdline']} --list-hosts --list-tasks".strip(),
        artifact_dir=str(private_dir / "listing"),
        ident="listing",
        rotate_artifacts=0,
        event_handler=None,
    )
    runner = _start(listing, secret_env)
    runner.run()
    if runner.status != STATUS_SUCCESSFUL:
        return None
    with runner.stdout as handle:
        return count_planned_results(handle.read())


def run_playbook(
    request: RunRequest,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    plan_progress: bool = False,
) -> RunResult:
    """Run the playbook and return its typed result; raises UsageError before starting."""
    _check(request)
    progress = progress or NullProgress()
    ident = request.ident or new_ident(request.action)
    request.artifact_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_dir = Path(tempfile.mkdtemp(prefix="onprem-llm-"))
    state = _Run(progress, cancel)
    secret_env = request.options.vault.env_names() if request.options.vault else set()
    started = time.monotonic()
    try:
        (private_dir / "env").mkdir(mode=0o700)
        settings = {"pexpect_timeout": _POLL_SECONDS}
        (private_dir / "env" / "settings").write_text(json.dumps(settings))
        kwargs: dict[str, Any] = {
            "private_data_dir": str(private_dir),
            "project_dir": str(request.project_dir),
            "playbook": str(request.playbook),
            "inventory": _inventories(request, private_dir),
            "limit": request.options.limit,
            "tags": request.options.tags,
            "skip_tags": request.options.skip_tags,
            "forks": request.options.forks,
            "cmdline": shlex.join(_cmdline(request)),
            "extravars": dict(request.extra_vars),
            "envvars": _child_env(request),
            "passwords": request.options.vault.prompt_answers() if request.options.vault else {},
            "artifact_dir": str(request.artifact_root),
            "ident": ident,
            "rotate_artifacts": request.options.rotate_artifacts,
            "timeout": request.options.timeout,
            "quiet": True,
            "suppress_env_files": True,
            "fact_cache_type": None,  # leave fact caching to the project's ansible.cfg
            "event_handler": state.on_event,
            "status_handler": _redact_command_artifact,
            "cancel_callback": state.canceled,
        }
        progress.start(_planned_results(kwargs, private_dir, secret_env) if plan_progress else None)
        if state.canceled():  # during the listing pass
            status, rc = STATUS_CANCELED, None
        else:
            runner = _start(kwargs, secret_env)
            runner.run()
            status, rc = runner.status, runner.rc
    finally:
        progress.finish()
        if not request.options.keep_private_data_dir:
            shutil.rmtree(private_dir, ignore_errors=True)
    return _result(
        request, state.tracker, ident, status, rc, time.monotonic() - started, private_dir
    )


def _result(
    request: RunRequest,
    tracker: EventTracker,
    ident: str,
    status: str,
    rc: int | None,
    duration: float,
    private_dir: Path,
) -> RunResult:
    failures = tuple(tracker.failures)
    exit_code = decide_exit_code(status, tracker.stats, failures)
    error = None
    if status == STATUS_CANCELED:
        error = "canceled before the run finished"
    elif status == STATUS_TIMEOUT:
        error = f"timed out after {request.options.timeout} s"
    elif status != STATUS_SUCCESSFUL and not failures:
        error = tracker.error_text or f"ansible-playbook exited with rc {rc}"
    return RunResult(
        action=request.action,
        playbook=str(request.playbook),
        status=status,
        exit_code=exit_code,
        rc=rc,
        ident=ident,
        artifact_dir=request.artifact_root / ident,
        duration_s=duration,
        stats=tracker.stats,
        failures=failures,
        error=error,
        data=tracker.data,
        changes=tuple(tracker.changes),
        private_data_dir=private_dir if request.options.keep_private_data_dir else None,
    )
