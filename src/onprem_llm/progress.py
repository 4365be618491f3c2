"""Live progress of a run: a redrawn bar on a terminal, one line per event otherwise."""

from __future__ import annotations

import shutil
from typing import Protocol, TextIO

from onprem_llm.events import EventTracker, Update

MODES = ("auto", "bar", "lines", "none")


class Progress(Protocol):
    def start(self, total: int | None) -> None: ...
    def update(self, update: Update, tracker: EventTracker) -> None: ...
    def finish(self) -> None: ...


def _indent(text: str) -> str:
    return "\n".join(f"      {line}" for line in text.splitlines())


class NullProgress:
    def start(self, total: int | None) -> None:
        pass

    def update(self, update: Update, tracker: EventTracker) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress:
    """For logs and CI: every play, task and host result on its own line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def start(self, total: int | None) -> None:
        pass

    def update(self, update: Update, tracker: EventTracker) -> None:
        if update.kind == "play":
            line = f"PLAY {update.play}"
        elif update.kind == "task":
            line = f"  TASK {update.task}"
        else:
            line = f"    {update.outcome.upper() if update.message else update.outcome:<11} "
            line += update.host + (f": {update.message}" if update.message else "")
        if update.diff:
            line += "\n" + _indent(update.diff)
        self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        pass


class BarProgress:
    """For terminals: one redrawn line with a bar, counters, the task and the last host.
    Failures are printed above it so they stay on screen."""

    BAR_WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total: int | None = None
        self.last = ""

    def start(self, total: int | None) -> None:
        self.total = total

    def render(self, tracker: EventTracker) -> str:
        done = tracker.results
        total = max(self.total or 0, done)
        if total:
            filled = round(self.BAR_WIDTH * done / total)
            bar = f"[{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {100 * done // total:3d}%"
        else:
            bar = f"[{'.' * self.BAR_WIDTH}]   ?%"
        counts = tracker.counts
        text = (
            f"{bar} {done}/{total or '?'}  ok {counts['ok']} changed {counts['changed']}"
            f" failed {counts['failed']} unreachable {counts['unreachable']}  "
        )
        # Shorten the task name, not the host, when the line is wider than the terminal.
        width = shutil.get_terminal_size((100, 20)).columns - 1
        host = f" @ {self.last}" if self.last else ""
        room = width - len(text) - len(host)
        task = tracker.task if len(tracker.task) <= room else tracker.task[: max(room - 1, 0)] + "~"
        return (text + task + host)[:width]

    def update(self, update: Update, tracker: EventTracker) -> None:
        if update.kind == "result":
            self.last = update.host
        if update.message:
            self.stream.write(f"\r\x1b[K{update.outcome.upper()} {update.host}")
            self.stream.write(f" [{update.task}]: {update.message}\n")
        if update.diff:
            self.stream.write(f"\r\x1b[K{update.outcome} {update.host} [{update.task}]:\n")
            self.stream.write(_indent(update.diff) + "\n")
        self.stream.write("\r\x1b[K" + self.render(tracker))
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def make_progress(mode: str, stream: TextIO) -> Progress:
    """auto: a bar on a terminal, lines otherwise."""
    if mode == "auto":
        mode = "bar" if stream.isatty() else "lines"
    if mode == "bar":
        return BarProgress(stream)
    if mode == "lines":
        return LineProgress(stream)
    return NullProgress()
