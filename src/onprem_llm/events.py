"""Turn ansible-runner events into progress updates, per-host stats and failures."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from onprem_llm.results import Change, Failure, HostStats

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_MESSAGE_KEYS = ("msg", "message", "reason", "exception")


@dataclass(frozen=True)
class Update:
    """One thing worth showing: a play or task started, or a host finished a task."""

    kind: str  # "play", "task" or "result"
    play: str
    task: str = ""
    host: str = ""
    outcome: str = ""  # ok, changed, failed, unreachable, skipped, ignored
    message: str = ""
    diff: str = ""  # what the task changed or would change, with --diff


def failure_message(res: Any) -> str:
    """The most useful line of a failed result; no_log results stay censored."""
    if not isinstance(res, dict):
        return str(res).strip() or "failed without a message"
    if res.get("censored"):
        return str(res["censored"])
    message = next((str(res[key]) for key in _MESSAGE_KEYS if res.get(key)), "")
    # Commands fail with "non-zero return code"; what went wrong is on stderr.
    stderr = str(res.get("stderr") or "")
    text = f"{message}: {stderr}" if message and stderr else message or stderr
    if text:
        return _ANSI.sub("", text).strip()
    for item in res.get("results") or ():
        if isinstance(item, dict) and item.get("failed"):
            return failure_message(item)
    return "failed without a message"


def render_diff(diff: Any) -> str:
    """A task result's `diff` (one dict or a list; before/after or prepared) as unified text."""
    parts = []
    for item in diff if isinstance(diff, list) else [diff]:
        if not isinstance(item, dict):
            continue
        if item.get("prepared"):
            parts.append(str(item["prepared"]).rstrip("\n"))
            continue
        before, after = item.get("before"), item.get("after")
        if not isinstance(before, str) or not isinstance(after, str) or before == after:
            continue
        lines = difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=str(item.get("before_header") or "before"),
            tofile=str(item.get("after_header") or "after"),
            lineterm="",
        )
        parts.append("\n".join(lines))
    return _ANSI.sub("", "\n".join(part for part in parts if part))


class EventTracker:
    """Accumulates what a run did from its event stream."""

    def __init__(self) -> None:
        self.play = ""
        self.task = ""
        self.counts: Counter[str] = Counter()
        self.results = 0
        self.failures: list[Failure] = []
        self.changes: list[Change] = []
        self.stats: dict[str, HostStats] = {}
        self.data: dict[str, Any] = {}
        self._errors: list[str] = []

    @property
    def error_text(self) -> str | None:
        return "\n".join(self._errors) or None

    def handle(self, event: dict[str, Any]) -> Update | None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if name == "playbook_on_play_start":
            self.play = str(data.get("name") or data.get("play") or "")
            self.task = ""
            return Update("play", self.play)
        if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.task = str(data.get("name") or data.get("task") or "")
            return Update("task", self.play, self.task)
        if name in _RESULT_EVENTS:
            return self._result(name, data)
        if name == "playbook_on_stats":
            self._recap(data)
            return None
        if name in ("verbose", "error"):
            self._collect_error(str(event.get("stdout") or ""))
        return None

    def _result(self, name: str, data: dict[str, Any]) -> Update:
        host = str(data.get("host") or "")
        task = str(data.get("task") or self.task)
        play = str(data.get("play") or self.play)
        res = data.get("res")
        outcome = _RESULT_EVENTS[name]
        message = ""
        if outcome == "ok" and isinstance(res, dict) and res.get("changed"):
            outcome = "changed"
        elif outcome == "failed" and data.get("ignore_errors"):
            outcome = "ignored"
        elif outcome in ("failed", "unreachable"):
            message = failure_message(res)
            failure = Failure(host, task, message, play, unreachable=outcome == "unreachable")
            self.failures.append(failure)
        diff = render_diff(res.get("diff")) if isinstance(res, dict) and res.get("diff") else ""
        if diff:
            self.changes.append(Change(host, task, diff))
        self.counts[outcome] += 1
        self.results += 1
        return Update("result", play, task, host, outcome, message, diff)

    def _recap(self, data: dict[str, Any]) -> None:
        def per_host(key: str) -> dict[str, int]:
            value = data.get(key)
            return value if isinstance(value, dict) else {}

        columns = {
            "ok": per_host("ok"),
            "changed": per_host("changed"),
            "failed": per_host("failures"),
            "unreachable": per_host("dark"),
            "skipped": per_host("skipped"),
            "rescued": per_host("rescued"),
            "ignored": per_host("ignored"),
        }
        hosts = set(per_host("processed"))
        for counts in columns.values():
            hosts.update(counts)
        self.stats = {
            host: HostStats(**{name: int(counts.get(host, 0)) for name, counts in columns.items()})
            for host in hosts
        }
        artifact_data = data.get("artifact_data")
        if isinstance(artifact_data, dict):
            self.data = artifact_data

    def _collect_error(self, stdout: str) -> None:
        # ansible prints "[ERROR]: ..." (2.19) or "ERROR! ..." (older), then "Origin: file:line".
        for line in _ANSI.sub("", stdout).splitlines():
            text = line.strip()
            if text.startswith(("[ERROR]", "ERROR!", "Origin:")):
                self._errors.append(text)


def count_planned_results(list_output: str) -> int | None:
    """Host x task results a run will report, from `--list-hosts --list-tasks` output.

    Dynamic includes count once and handlers not at all, so this is an estimate that the
    progress bar grows past when needed.
    """
    total = 0
    hosts = 0
    in_tasks = False
    seen_play = False
    for raw in _ANSI.sub("", list_output).splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("play #"):
            seen_play = True
            in_tasks = False
            hosts = 0
            continue
        match = re.match(r"^hosts \((\d+)\):", line)
        if match:
            hosts = int(match.group(1))
            in_tasks = False
            continue
        if line == "tasks:":
            in_tasks = True
            continue
        if in_tasks:
            total += hosts
    return total if seen_play else None
