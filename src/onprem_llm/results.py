"""Typed results of playbook runs, and the exit codes automation can rely on."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ExitCode(enum.IntEnum):
    """Exit codes of the onprem-llm CLI. Decided from per-host stats, not ansible's own rc,
    which uses 4 for both unreachable hosts and parse errors."""

    OK = 0
    ERROR = 1  # the run failed before or outside any host (syntax, missing file, crash)
    HOST_FAILED = 2  # at least one task failed on a host
    HOST_UNREACHABLE = 3  # at least one host unreachable, none failed
    USAGE = 5  # bad command line or input; nothing ran
    TIMEOUT = 124  # the --timeout passed
    CANCELED = 130  # Ctrl-C or SIGTERM


STATUS_SUCCESSFUL = "successful"
STATUS_FAILED = "failed"
STATUS_CANCELED = "canceled"
STATUS_TIMEOUT = "timeout"


@dataclass(frozen=True)
class HostStats:
    """Per-host counters from the play recap."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Failure:
    """One failed or unreachable host, the task and ansible's message."""

    host: str
    task: str
    message: str
    play: str = ""
    unreachable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Change:
    """A diff one task reported for one host (with --diff)."""

    host: str
    task: str
    diff: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunResult:
    """What one playbook run did. `data` holds what the playbook published with set_stats."""

    action: str
    playbook: str
    status: str
    exit_code: ExitCode
    rc: int | None
    ident: str
    artifact_dir: Path
    duration_s: float
    stats: dict[str, HostStats] = field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    private_data_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        document = {
            "action": self.action,
            "playbook": self.playbook,
            "status": self.status,
            "exit_code": int(self.exit_code),
            "rc": self.rc,
            "ident": self.ident,
            "artifact_dir": str(self.artifact_dir),
            "duration_s": round(self.duration_s, 3),
            "stats": {host: stats.to_dict() for host, stats in sorted(self.stats.items())},
            "failures": [failure.to_dict() for failure in self.failures],
            "error": self.error,
            "data": self.data,
            "changes": [change.to_dict() for change in self.changes],
        }
        if self.private_data_dir is not None:
            document["private_data_dir"] = str(self.private_data_dir)
        return document


def decide_exit_code(
    status: str, stats: dict[str, HostStats], failures: tuple[Failure, ...]
) -> ExitCode:
    """One exit code from the run's status and what happened on the hosts."""
    if status == STATUS_CANCELED:
        return ExitCode.CANCELED
    if status == STATUS_TIMEOUT:
        return ExitCode.TIMEOUT
    failed = any(s.failed for s in stats.values()) or any(not f.unreachable for f in failures)
    if failed:
        return ExitCode.HOST_FAILED
    unreachable = any(s.unreachable for s in stats.values()) or any(f.unreachable for f in failures)
    if unreachable:
        return ExitCode.HOST_UNREACHABLE
    if status != STATUS_SUCCESSFUL:
        return ExitCode.ERROR
    return ExitCode.OK
