"""Event stream -> progress, stats and failures; the task listing parser; progress output."""

from __future__ import annotations

import io
import re

import pytest

from onprem_llm.events import EventTracker, count_planned_results, failure_message, render_diff
from onprem_llm.progress import BarProgress, LineProgress, NullProgress, make_progress
from onprem_llm.results import ExitCode, Failure, HostStats, decide_exit_code


def event(kind: str, **data: object) -> dict[str, object]:
    return {"event": kind, "event_data": data}


STREAM = [
    event("playbook_on_play_start", name="Converge GPU nodes"),
    event("playbook_on_task_start", name="Install the driver"),
    event("runner_on_ok", host="gpu1", task="Install the driver", res={"changed": True}),
    event("runner_on_ok", host="gpu2", task="Install the driver", res={"changed": False}),
    event("playbook_on_task_start", name="Load the module"),
    event("runner_on_failed", host="gpu1", task="Load the module", res={"msg": "modprobe: FATAL"}),
    event(
        "runner_on_failed",
        host="gpu2",
        task="Load the module",
        ignore_errors=True,
        res={"msg": "ignored"},
    ),
    event("runner_on_unreachable", host="gpu3", task="Load the module", res={"msg": "timed out"}),
    event(
        "playbook_on_stats",
        ok={"gpu1": 1, "gpu2": 2},
        changed={"gpu1": 1},
        failures={"gpu1": 1},
        dark={"gpu3": 1},
        skipped={},
        rescued={},
        ignored={"gpu2": 1},
        processed={"gpu1": 1, "gpu2": 1, "gpu3": 1},
        artifact_data={"gates": {"ecc": "pass"}},
    ),
]


def test_tracker_turns_events_into_stats_failures_and_updates() -> None:
    tracker = EventTracker()
    updates = [tracker.handle(e) for e in STREAM]
    kinds = [u.kind if u else None for u in updates]
    assert kinds == ["play", "task", "result", "result", "task", "result", "result", "result", None]
    assert [u.outcome for u in updates if u and u.kind == "result"] == [
        "changed", "ok", "failed", "ignored", "unreachable",
    ]  # fmt: skip
    assert tracker.failures == [
        Failure("gpu1", "Load the module", "modprobe: FATAL", "Converge GPU nodes"),
        Failure("gpu3", "Load the module", "timed out", "Converge GPU nodes", unreachable=True),
    ]
    assert tracker.stats["gpu1"] == HostStats(ok=1, changed=1, failed=1)
    assert tracker.stats["gpu2"] == HostStats(ok=2, ignored=1)
    assert tracker.stats["gpu3"] == HostStats(unreachable=1)
    assert tracker.data == {"gates": {"ecc": "pass"}}
    status = "failed"
    assert decide_exit_code(status, tracker.stats, tuple(tracker.failures)) == ExitCode.HOST_FAILED


def test_exit_codes() -> None:
    unreachable = {"h": HostStats(unreachable=1)}
    assert decide_exit_code("successful", {"h": HostStats(ok=1)}, ()) == ExitCode.OK
    assert decide_exit_code("failed", unreachable, ()) == ExitCode.HOST_UNREACHABLE
    assert decide_exit_code("failed", {}, ()) == ExitCode.ERROR
    assert decide_exit_code("canceled", {"h": HostStats(failed=1)}, ()) == ExitCode.CANCELED
    assert decide_exit_code("timeout", {}, ()) == ExitCode.TIMEOUT


def test_failure_messages() -> None:
    censored = {"censored": "the output has been hidden due to no_log", "changed": False}
    assert failure_message(censored) == "the output has been hidden due to no_log"
    assert failure_message({"stderr": "\x1b[31mdenied\x1b[0m\n"}) == "denied"
    command = {"msg": "non-zero return code", "rc": 1, "stderr": "modprobe: FATAL: not found"}
    assert failure_message(command) == "non-zero return code: modprobe: FATAL: not found"
    loop = {"msg": "", "results": [{"failed": False}, {"failed": True, "msg": "item 2 broke"}]}
    assert failure_message(loop) == "item 2 broke"
    assert failure_message({}) == "failed without a message"


def test_errors_outside_hosts_are_collected() -> None:
    tracker = EventTracker()
    tracker.handle(event("verbose") | {"stdout": "\x1b[0;31m[ERROR]: could not be found\x1b[0m"})
    tracker.handle(event("verbose") | {"stdout": "Origin: /srv/site.yml:3:7"})
    tracker.handle(event("verbose") | {"stdout": "[WARNING]: noise"})
    assert tracker.error_text == "[ERROR]: could not be found\nOrigin: /srv/site.yml:3:7"


LISTING = """
playbook: site.yml

  play #1 (all): Validate input	TAGS: [always]
    pattern: ['all']
    hosts (3):
      gpu1
      gpu2
      gw1
    tasks:
      common : Validate the baseline settings	TAGS: [always]

  play #2 (gpu_nodes): Converge GPU nodes	TAGS: []
    pattern: ['gpu_nodes']
    hosts (2):
      gpu1
      gpu2
    tasks:
      common : Install chrony	TAGS: [common]
      common : Configure chrony	TAGS: [common]
"""


def test_planned_results_from_the_task_listing() -> None:
    assert count_planned_results(LISTING) == 3 * 1 + 2 * 2
    assert count_planned_results("ERROR! nothing") is None


def test_line_and_bar_progress() -> None:
    lines, bar_stream = io.StringIO(), io.StringIO()
    line_progress, bar_progress = LineProgress(lines), BarProgress(bar_stream, force_terminal=True)
    bar_progress.start(10)
    tracker = EventTracker()
    for e in STREAM:
        update = tracker.handle(e)
        if update:
            line_progress.update(update, tracker)
            bar_progress.update(update, tracker)
    bar_progress.finish()
    assert lines.getvalue().splitlines()[:4] == [
        "PLAY Converge GPU nodes",
        "  TASK Install the driver",
        "    changed     gpu1",
        "    ok          gpu2",
    ]
    assert "    FAILED      gpu1: modprobe: FATAL" in lines.getvalue()
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bar_stream.getvalue())
    assert re.search(r" 50% +5/10 ok 1 changed 1 failed 1 unreachable 1 ", drawn), drawn
    assert "FAILED gpu1 [Load the module]: modprobe: FATAL\n" in drawn
    assert "Load the module @ gpu3" in drawn  # the task and the last host


def test_the_bar_is_for_terminals_that_redraw(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(make_progress("auto", Terminal()), BarProgress)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_progress("auto", Terminal()), LineProgress)


def test_auto_progress_picks_lines_off_a_terminal() -> None:
    assert isinstance(make_progress("auto", io.StringIO()), LineProgress)
    assert isinstance(make_progress("none", io.StringIO()), NullProgress)


def test_diffs_render_as_unified_text() -> None:
    diff = [
        {"before": "a\nb\n", "after": "a\nc\n", "before_header": "/etc/x", "after_header": "/x"},
        {"prepared": "  line added"},
        {"before": "same", "after": "same"},
    ]
    assert render_diff(diff).splitlines() == [
        "--- /etc/x", "+++ /x", "@@ -1,2 +1,2 @@", " a", "-b", "+c", "  line added",
    ]  # fmt: skip
    tracker = EventTracker()
    update = tracker.handle(
        event("runner_on_ok", host="h", task="Write", res={"changed": True, "diff": diff[1]})
    )
    assert update is not None and update.diff == "  line added"
    assert [change.to_dict() for change in tracker.changes] == [
        {"host": "h", "task": "Write", "diff": "  line added"}
    ]
