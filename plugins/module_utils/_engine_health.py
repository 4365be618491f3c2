"""Decisions of the engine health gate: keep waiting, healthy, or fail early with the reason.

The engine_health module polls an instance's health URL and reads its systemd unit between
polls; each poll becomes an Observation and HealthGate.observe turns the sequence into a
Decision. Engine units run with Restart=on-failure, so a crash loop never reaches `failed`:
it shows as NRestarts growing while the unit sits in `activating/auto-restart`.
Standard library only and free of Ansible, so unit tests feed it recorded observations.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass

# Read with `systemctl show UNIT --property=...`; Key=Value lines, since --value prints the
# values in systemd's own order, not the order asked for.
SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "ExecMainCode",
    "ExecMainStatus",
)

WAIT, HEALTHY, FAILED = "wait", "healthy", "failed"

# ExecMainCode is the waitid() si_code of the main process's end.
_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class UnitState:
    """One reading of a unit; error is set when systemctl itself failed."""

    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    result: str = ""
    n_restarts: int | None = None
    exec_main_code: int | None = None
    exec_main_status: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "LoadState": self.load_state,
            "ActiveState": self.active_state,
            "SubState": self.sub_state,
            "Result": self.result,
            "NRestarts": self.n_restarts,
            "ExecMainCode": self.exec_main_code,
            "ExecMainStatus": self.exec_main_status,
        }

    def exit_detail(self) -> str:
        """`Result=exit-code, status 1` / `Result=signal, signal SIGKILL` / `Result=oom-kill`."""
        parts = [f"Result={self.result or '?'}"]
        status = self.exec_main_status
        if self.exec_main_code == _CLD_EXITED and status is not None:
            parts.append(f"status {status}")
        elif self.exec_main_code in (_CLD_KILLED, _CLD_DUMPED) and status:
            parts.append(f"signal {_signal_name(status)}")
        elif self.exec_main_code is None and status:
            parts.append(f"status {status}")  # no ExecMainCode (older systemd)
        return ", ".join(parts)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def parse_unit_state(text: str) -> UnitState:
    """Parse `systemctl show --property=...` output; absent or odd numbers become None."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return UnitState(
        load_state=values.get("LoadState", ""),
        active_state=values.get("ActiveState", ""),
        sub_state=values.get("SubState", ""),
        result=values.get("Result", ""),
        n_restarts=_int_or_none(values.get("NRestarts")),
        exec_main_code=_int_or_none(values.get("ExecMainCode")),
        exec_main_status=_int_or_none(values.get("ExecMainStatus")),
    )


@dataclass(frozen=True)
class Probe:
    """One HTTP answer: its status, or why there was none (connection refused...)."""

    status: int | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no answer"


@dataclass(frozen=True)
class Observation:
    """What one poll saw, `elapsed` seconds after the gate started."""

    elapsed: float
    probe: Probe
    unit: UnitState


@dataclass(frozen=True)
class Decision:
    outcome: str
    reason: str = ""
    restarts: int | None = None


class HealthGate:
    """Turns observations into decisions; restarts count from the first NRestarts it sees."""

    def __init__(self, *, timeout: float, max_restarts: int, status_code: int = 200) -> None:
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.status_code = status_code
        self._baseline: int | None = None
        self.restarts: int | None = None

    def _count_restarts(self, n_restarts: int | None) -> None:
        if n_restarts is None:
            return  # unknown this time: keep the last count
        if self._baseline is None or n_restarts < self._baseline:
            # First reading, or the counter was reset by a manual start: count from here.
            self._baseline = n_restarts - (self.restarts or 0)
        self.restarts = n_restarts - self._baseline

    def observe(self, observation: Observation) -> Decision:
        unit, probe = observation.unit, observation.probe
        if unit.error is not None:
            return Decision(FAILED, f"cannot read the unit's state: {unit.error}", self.restarts)
        self._count_restarts(unit.n_restarts)
        restarts = self.restarts
        # The unit must be up too: an answer while it is down comes from some other process.
        if probe.status == self.status_code and unit.active_state == "active":
            return Decision(HEALTHY, "", restarts)
        if unit.load_state and unit.load_state != "loaded":
            return Decision(FAILED, f"unit not loaded (LoadState={unit.load_state})", restarts)
        if unit.active_state == "failed":
            return Decision(FAILED, f"unit failed ({unit.exit_detail()})", restarts)
        if restarts is not None and restarts > self.max_restarts:
            reason = f"crash loop: restarted {restarts} times in {round(observation.elapsed)} s"
            if unit.result and unit.result != "success":
                reason += f" ({unit.exit_detail()})"
            return Decision(FAILED, reason, restarts)
        if unit.active_state == "inactive":
            # Restart=on-failure does not restart a clean exit or a `systemctl stop`.
            state = f"{unit.active_state}/{unit.sub_state}, {unit.exit_detail()}"
            return Decision(FAILED, f"unit stopped ({state})", restarts)
        if observation.elapsed >= self.timeout:
            reason = f"not healthy after {self.timeout:g} s (last answer: {probe.describe()})"
            return Decision(FAILED, reason, restarts)
        return Decision(WAIT, "", restarts)


def decide(
    observations: Iterable[Observation],
    *,
    timeout: float,
    max_restarts: int,
    status_code: int = 200,
) -> Decision:
    """The first final decision over a sequence of observations, else the last (WAIT)."""
    gate = HealthGate(timeout=timeout, max_restarts=max_restarts, status_code=status_code)
    decision = Decision(WAIT)
    for observation in observations:
        decision = gate.observe(observation)
        if decision.outcome != WAIT:
            break
    return decision
