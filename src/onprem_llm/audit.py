"""Verify the playbook-run audit log the onprem.llm.audit_log callback writes.

The hash chain shows an edited, deleted, reordered or truncated record anywhere but at the very
end: deleting the last records leaves a shorter, valid chain (the syslog copy still has them).
With the key, the HMAC also shows an edited last record and records rewritten as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onprem_llm.collection_utils._audit_chain import (
    GENESIS,
    chain_position,
    hmac_matches,
    line_hash,
)


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class VerifyReport:
    path: Path
    lines: int = 0
    records: int = 0
    runs: int = 0
    signed: bool = False  # the HMACs were checked with a key
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        runs = f"{_count(self.records, 'record')} of {_count(self.runs, 'run')}"
        if self.problems:
            return f"{self.path}: FAILED: {_count(len(self.problems), 'problem')} in {runs}"
        how = "chain and HMACs intact" if self.signed else "chain intact (HMACs not checked)"
        return f"{self.path}: OK: {runs}, {how}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "lines": self.lines,
            "records": self.records,
            "runs": self.runs,
            "hmac_checked": self.signed,
            "problems": [{"line": p.line, "message": p.message} for p in self.problems],
        }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """The lines without line ends, and whether the last one is complete."""
    if not data:
        return [], True
    lines = data.split(b"\n")
    complete = lines[-1] == b""
    return (lines[:-1] if complete else lines), complete


def verify(path: str | Path, key: bytes | None = None) -> VerifyReport:
    """Check the chain (and with a key the HMACs) of an audit log; OSError if unreadable."""
    path = Path(path)
    lines, complete = _split_lines(path.read_bytes())
    report = VerifyReport(path=path, lines=len(lines), signed=key is not None)
    seqs = [chain_position(line) for line in lines]
    line_of_seq = {seq: number for number, seq in enumerate(seqs, 1) if seq is not None}
    line_of_hash = {line_hash(line): number for number, line in enumerate(lines, 1)}
    flagged: set[int] = set()
    unsigned: list[int] = []
    bad_hmac: list[int] = []
    runs: set[str] = set()
    last_seq = 0

    def problem(number: int, message: str) -> None:
        report.problems.append(Problem(number, message))
        flagged.add(number)

    for number, (line, seq) in enumerate(zip(lines, seqs, strict=True), 1):
        if number == len(lines) and not complete:
            problem(number, "truncated (the last line has no line end)")
            continue
        if seq is None:
            problem(number, "not an audit record (not JSON, or no seq and prev)")
            continue
        record = json.loads(line)
        report.records += 1
        if isinstance(record.get("run"), str):
            runs.add(record["run"])
        expected_prev = line_hash(lines[number - 2]) if number > 1 else GENESIS
        if seq <= last_seq:
            problem(number, f"out of order (seq {seq} comes after seq {last_seq})")
        elif seq > last_seq + 1:
            missing = last_seq + 1
            if missing in line_of_seq:
                problem(
                    number,
                    f"out of order (seq {seq} where {missing} was expected;"
                    f" seq {missing} is on line {line_of_seq[missing]})",
                )
            else:
                deleted = _count(seq - missing, "record")
                problem(number, f"{deleted} deleted before it (seq jumps from {last_seq} to {seq})")
        elif record["prev"] != expected_prev:
            follows = line_of_hash.get(record["prev"])
            if number == 1:
                problem(1, "does not start a chain (its prev is not the chain start)")
            elif follows is not None and follows != number - 1:
                if number - 1 not in flagged:
                    problem(number, f"out of order (it follows line {follows} in the chain)")
            elif number - 1 not in flagged:
                problem(
                    number - 1,
                    f"record edited (its hash does not match line {number}'s prev)",
                )
        last_seq = max(last_seq, seq)
        if key is not None:
            if record.get("hmac") is None:
                unsigned.append(number)
            elif not hmac_matches(record, key):
                bad_hmac.append(number)
    report.runs = len(runs)
    _hmac_problems(report, unsigned, bad_hmac)
    report.problems.sort(key=lambda p: p.line)
    return report


def _hmac_problems(report: VerifyReport, unsigned: list[int], bad_hmac: list[int]) -> None:
    if bad_hmac and len(bad_hmac) == report.records > 1:
        report.problems.append(
            Problem(bad_hmac[0], "no record's hmac matches the key (the wrong key?)")
        )
    else:
        report.problems += [Problem(n, "record edited (its hmac does not match)") for n in bad_hmac]
    for first, last in _ranges(unsigned):
        where = f"{first}" if first == last else f"{first}-{last}"
        report.problems.append(Problem(first, f"no hmac, but a key was given (lines {where})"))


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] -> [(1, 3), (7, 7)]"""
    ranges: list[tuple[int, int]] = []
    for number in numbers:
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges
