"""Live progress of a run: a redrawn bar on a terminal, one line per event otherwise."""

from __future__ import annotations

import os
import time
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
    """For terminals: rich's bar with counters, the task and the last host, redrawn from the
    events (no refresh thread). Failures and diffs are printed above it so they stay on screen.
    rich is imported only here: runs off a terminal do not pay for it."""

    REDRAWS_PER_SECOND = 10

    def __init__(self, stream: TextIO, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(
            file=stream, force_terminal=force_terminal, highlight=False, markup=False, emoji=False
        )
        self.rich_progress = RichProgress(
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.description}", markup=False),
            console=self.console,
            auto_refresh=False,
            transient=True,
        )
        self.task_id = self.rich_progress.add_task("", total=None, counts="")
        self.total: int | None = None
        self.last = ""
        self.drawn = 0.0

    def start(self, total: int | None) -> None:
        self.total = total
        self.rich_progress.update(self.task_id, total=total)
        self.rich_progress.start()

    def update(self, update: Update, tracker: EventTracker) -> None:
        if update.kind == "result":
            self.last = update.host
        if update.message:
            self.console.print(
                f"{update.outcome.upper()} {update.host} [{update.task}]: {update.message}"
            )
        if update.diff:
            self.console.print(f"{update.outcome} {update.host} [{update.task}]:")
            self.console.print(_indent(update.diff))
        counts = tracker.counts
        done = tracker.results
        self.rich_progress.update(
            self.task_id,
            completed=done,
            total=max(self.total or 0, done) or None,
            counts=(
                f"ok {counts['ok']} changed {counts['changed']} failed {counts['failed']}"
                f" unreachable {counts['unreachable']}"
            ),
            description=tracker.task + (f" @ {self.last}" if self.last else ""),
        )
        # Redrawing costs far more than an event: at most REDRAWS_PER_SECOND, as a terminal
        # shows, so a site of a thousand hosts does not spend its run drawing the bar.
        now = time.monotonic()
        if now - self.drawn >= 1 / self.REDRAWS_PER_SECOND or update.kind != "result":
            self.drawn = now
            self.rich_progress.refresh()

    def finish(self) -> None:
        self.rich_progress.refresh()  # the last counts, which a skipped redraw may have left out
        self.rich_progress.stop()


def interactive(stream: TextIO) -> bool:
    """A terminal that can redraw a line: not a pipe or file, and not TERM=dumb."""
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


def make_progress(mode: str, stream: TextIO) -> Progress:
    """auto: a bar on a terminal, lines otherwise."""
    if mode == "auto":
        mode = "bar" if interactive(stream) else "lines"
    if mode == "bar":
        return BarProgress(stream)
    if mode == "lines":
        return LineProgress(stream)
    return NullProgress()
