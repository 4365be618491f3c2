"""The engine health gate's decisions on recorded `systemctl show` readings and HTTP answers."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from ansible_collections.onprem.llm.plugins.module_utils._engine_health import (
    FAILED,
    HEALTHY,
    SHOW_PROPERTIES,
    WAIT,
    HealthGate,
    Observation,
    Probe,
    UnitState,
    decide,
    parse_unit_state,
)

REFUSED = Probe(error="[Errno 111] Connection refused")
OK = Probe(status=200)
LOADING = Probe(status=503)


def show(
    active: str = "active",
    sub: str = "running",
    restarts: str = "0",
    result: str = "success",
    code: str = "0",
    status: str = "0",
    load: str = "loaded",
) -> str:
    """`systemctl show UNIT --property=...` output as systemd 252 prints it."""
    return (
        f"LoadState={load}\nActiveState={active}\nSubState={sub}\nResult={result}\n"
        f"NRestarts={restarts}\nExecMainCode={code}\nExecMainStatus={status}\n"
    )


RUNNING = show()
STARTING = show("activating", "start")  # a container unit's ExecStartPre
# Restart=on-failure between a crash and the next start (RestartSec=5).
CRASHED = {
    n: show("activating", "auto-restart", str(n), "exit-code", "1", "1") for n in range(1, 5)
}


def crashed_then_running(n: int) -> str:
    """Running again after n crashes: NRestarts stays, Result keeps the last failure."""
    return show("active", "running", str(n), "exit-code", "0", "0")


class Case(NamedTuple):
    polls: list[tuple[float, Probe, str]]
    outcome: str
    reason: str
    restarts: int | None


CASES = {
    "healthy first try": Case([(0.1, OK, RUNNING)], HEALTHY, "", 0),
    "healthy after loading": Case(
        [(0, REFUSED, STARTING), (5, REFUSED, RUNNING), (10, LOADING, RUNNING), (15, OK, RUNNING)],
        HEALTHY,
        "",
        0,
    ),
    "healthy after restarts below the limit": Case(
        [
            (0, REFUSED, RUNNING),
            (5, REFUSED, CRASHED[1]),
            (10, REFUSED, crashed_then_running(1)),
            (15, REFUSED, CRASHED[2]),
            (20, OK, crashed_then_running(2)),
        ],
        HEALTHY,
        "",
        2,
    ),
    "crash loop": Case(
        [
            (0, REFUSED, RUNNING),
            (6, REFUSED, CRASHED[1]),
            (20, REFUSED, CRASHED[2]),
            (33, REFUSED, crashed_then_running(2)),
            (41, REFUSED, CRASHED[3]),
            (46, REFUSED, RUNNING),
        ],
        FAILED,
        "crash loop: restarted 3 times in 41 s (Result=exit-code, status 1)",
        3,
    ),
    "crash loop counted from the module's start": Case(
        [(0, REFUSED, CRASHED[1]), (12, REFUSED, CRASHED[3]), (24, REFUSED, CRASHED[4])],
        FAILED,
        "crash loop: restarted 3 times in 24 s (Result=exit-code, status 1)",
        3,
    ),
    "crash loop killed by a signal": Case(
        [
            (0, REFUSED, RUNNING),
            (30, REFUSED, show("activating", "auto-restart", "3", "core-dump", "3", "6")),
        ],
        FAILED,
        "crash loop: restarted 3 times in 30 s (Result=core-dump, signal SIGABRT)",
        3,
    ),
    "unit failed": Case(
        [(0, REFUSED, RUNNING), (5, REFUSED, show("failed", "failed", "0", "exit-code", "1", "1"))],
        FAILED,
        "unit failed (Result=exit-code, status 1)",
        0,
    ),
    "unit failed by the start limit": Case(
        [(0, REFUSED, show("failed", "failed", "5", "start-limit-hit", "1", "2"))],
        FAILED,
        "unit failed (Result=start-limit-hit, status 2)",
        0,
    ),
    "unit stopped": Case(
        [(0, LOADING, RUNNING), (5, REFUSED, show("inactive", "dead", "0", "success", "2", "15"))],
        FAILED,
        "unit stopped (inactive/dead, Result=success, signal SIGTERM)",
        0,
    ),
    "unit exited cleanly, so it is not restarted": Case(
        [(0, REFUSED, show("inactive", "dead", "0", "success", "1", "0"))],
        FAILED,
        "unit stopped (inactive/dead, Result=success, status 0)",
        0,
    ),
    "unit not found": Case(
        [(0, REFUSED, show("inactive", "dead", "0", "success", load="not-found"))],
        FAILED,
        "unit not loaded (LoadState=not-found)",
        0,
    ),
    "timeout": Case(
        [(t, REFUSED, STARTING) for t in range(0, 900, 5)] + [(900.4, REFUSED, STARTING)],
        FAILED,
        "not healthy after 900 s (last answer: [Errno 111] Connection refused)",
        0,
    ),
    "timeout while the engine answers 503": Case(
        [(0, LOADING, RUNNING), (899, LOADING, RUNNING), (904, LOADING, RUNNING)],
        FAILED,
        "not healthy after 900 s (last answer: HTTP 503)",
        0,
    ),
    "NRestarts unparsable: still waits, then healthy": Case(
        [
            (0, REFUSED, show(restarts="")),
            (5, REFUSED, show("activating", "auto-restart", "[not set]", "exit-code", "1", "1")),
            (10, OK, show(restarts="")),
        ],
        HEALTHY,
        "",
        None,
    ),
    "NRestarts unparsable: no crash loop detection, the timeout ends it": Case(
        [
            (t, REFUSED, show("activating", "auto-restart", "n/a", "exit-code", "1", "1"))
            for t in (0, 300, 600, 900)
        ],
        FAILED,
        "not healthy after 900 s (last answer: [Errno 111] Connection refused)",
        None,
    ),
    "an answer while the unit is down is not the engine": Case(
        [(0, OK, CRASHED[1]), (5, OK, show("activating", "start", "1"))],
        WAIT,
        "",
        0,
    ),
    "a manual restart resets NRestarts; counting goes on": Case(
        [
            (0, REFUSED, CRASHED[2]),
            (5, REFUSED, CRASHED[4]),
            (10, REFUSED, RUNNING),  # `systemctl restart` by hand: NRestarts back to 0
            (15, REFUSED, CRASHED[1]),
        ],
        FAILED,
        "crash loop: restarted 3 times in 15 s (Result=exit-code, status 1)",
        3,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decisions(case: Case) -> None:
    observations = [
        Observation(elapsed=t, probe=probe, unit=parse_unit_state(text))
        for t, probe, text in case.polls
    ]
    decision = decide(observations, timeout=900, max_restarts=2)
    assert (decision.outcome, decision.reason, decision.restarts) == (
        case.outcome,
        case.reason,
        case.restarts,
    )


def test_decision_comes_at_the_first_poll_that_settles_it() -> None:
    gate = HealthGate(timeout=900, max_restarts=2)
    polls = [(0, RUNNING), (5, CRASHED[1]), (10, CRASHED[2]), (15, CRASHED[3])]
    outcomes = [
        gate.observe(Observation(t, REFUSED, parse_unit_state(text))).outcome for t, text in polls
    ]
    assert outcomes == [WAIT, WAIT, WAIT, FAILED]


def test_max_restarts_zero_fails_on_the_first_restart() -> None:
    polls = [(0, REFUSED, RUNNING), (7, REFUSED, CRASHED[1])]
    observations = [Observation(t, p, parse_unit_state(text)) for t, p, text in polls]
    decision = decide(observations, timeout=900, max_restarts=0)
    assert decision.reason == "crash loop: restarted 1 times in 7 s (Result=exit-code, status 1)"


def test_other_status_code_means_healthy() -> None:
    unit = parse_unit_state(RUNNING)
    gate = HealthGate(timeout=60, max_restarts=2, status_code=204)
    assert gate.observe(Observation(0, OK, unit)).outcome == WAIT
    assert gate.observe(Observation(5, Probe(status=204), unit)).outcome == HEALTHY


def test_unreadable_unit_fails_at_once() -> None:
    unit = UnitState(error="Failed to connect to bus: No such file or directory")
    decision = decide([Observation(0, REFUSED, unit)], timeout=900, max_restarts=2)
    assert (decision.outcome, decision.reason) == (
        FAILED,
        "cannot read the unit's state: Failed to connect to bus: No such file or directory",
    )


def test_parse_unit_state_reads_key_value_lines_in_any_order() -> None:
    text = (
        "ExecMainStatus=1\nNRestarts=7\nSubState=auto-restart\nActiveState=activating\n"
        "Result=exit-code\nExecMainCode=1\nLoadState=loaded\nDescription=a=b\n"
    )
    state = parse_unit_state(text)
    assert state == UnitState("loaded", "activating", "auto-restart", "exit-code", 7, 1, 1)
    assert state.as_dict() == {
        "LoadState": "loaded",
        "ActiveState": "activating",
        "SubState": "auto-restart",
        "Result": "exit-code",
        "NRestarts": 7,
        "ExecMainCode": 1,
        "ExecMainStatus": 1,
    }


def test_parse_unit_state_of_empty_output() -> None:
    state = parse_unit_state("")
    assert (state.active_state, state.n_restarts, state.exec_main_status) == ("", None, None)


@pytest.mark.parametrize(
    ("result", "code", "status", "detail"),
    [
        ("exit-code", "1", "1", "Result=exit-code, status 1"),
        ("signal", "2", "9", "Result=signal, signal SIGKILL"),
        ("oom-kill", "2", "9", "Result=oom-kill, signal SIGKILL"),
        ("signal", "2", "250", "Result=signal, signal 250"),
        ("success", "0", "0", "Result=success"),
        ("exit-code", "", "203", "Result=exit-code, status 203"),
    ],
)
def test_exit_detail(result: str, code: str, status: str, detail: str) -> None:
    text = f"Result={result}\nExecMainCode={code}\nExecMainStatus={status}\n"
    assert parse_unit_state(text).exit_detail() == detail


def test_properties_asked_of_systemctl() -> None:
    assert set(SHOW_PROPERTIES) >= {
        "ActiveState",
        "SubState",
        "NRestarts",
        "Result",
        "ExecMainStatus",
    }
