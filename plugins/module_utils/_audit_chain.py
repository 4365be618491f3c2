"""The hash chain and HMAC of the playbook-run audit log (JSON lines).

One place for the bytes that are hashed and signed, and for checking and pruning a log: used by
the onprem.llm.audit_log callback that writes the log, the onprem.llm.audit_log_prune action that
applies the retention of playbook runs, and `onprem-llm audit verify` and `prune` (the package
imports this file as onprem_llm.collection_utils._audit_chain).

Each line is one record: its canonical JSON, with `hmac` appended as the last member. A record
carries `seq` (1, 2, ... over the file), `prev` (sha256 of the previous line's bytes without its
line end; GENESIS for the first line) and `hmac` (HMAC-SHA256 of the canonical JSON of the
record without `hmac`, or null without a key).

The hash chain shows an edited, deleted, reordered or truncated record anywhere but at the very
end: deleting the last records leaves a shorter, valid chain (the syslog copy still has them).
With the key, the HMAC also shows an edited last record and records rewritten as a whole.

Pruning (the retention of playbook-run records) removes the oldest records and puts a `pruned`
record first, in their place: it carries the seq and the line hash of the last removed record, so
the chain of the records kept still verifies, and deleting more records later is still found.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
MIN_KEY_BYTES = 32


class AuditKeyError(ValueError):
    """A key file that cannot be used."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only: equal values always give equal bytes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return text.encode("ascii")


def line_hash(line: bytes) -> str:
    """sha256 hex of a line's bytes without its line end: the next record's `prev`."""
    return hashlib.sha256(line).hexdigest()


def record_hmac(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 hex of the record's canonical JSON, its own `hmac` field left out."""
    unsigned = {name: value for name, value in record.items() if name != "hmac"}
    return hmac.new(key, canonical_json(unsigned), hashlib.sha256).hexdigest()


def hmac_matches(record: Mapping[str, Any], key: bytes) -> bool:
    signature = record.get("hmac")
    return isinstance(signature, str) and hmac.compare_digest(signature, record_hmac(record, key))


def seal(record: Mapping[str, Any], seq: int, prev: str, key: bytes | None) -> bytes:
    """The record's line (without line end): chained after `prev`, signed when there is a key.
    The signed bytes are the line up to the appended `hmac`, so they are serialised once."""
    unsigned = canonical_json({**record, "seq": seq, "prev": prev})
    signature = hmac.new(key, unsigned, hashlib.sha256).hexdigest() if key else None
    return unsigned[:-1] + b',"hmac":' + json.dumps(signature).encode("ascii") + b"}"


def chain_position(line: bytes) -> int | None:
    """The seq of a line that is a chained record, else None (not JSON, or no seq/prev)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(prev, str):
        return None
    return seq


def load_key(path: str | Path) -> bytes:
    """The key a key file holds as text (surrounding whitespace ignored); OSError if unreadable."""
    key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"the key in {path} is {len(key)} bytes long; it must be at least {MIN_KEY_BYTES}"
        )
    return key


PRUNED = "pruned"


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
    pruned: int | None = None  # records removed by prune, when the file starts with their stand-in
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        runs = f"{_count(self.records, 'record')} of {_count(self.runs, 'run')}"
        if self.problems:
            return f"{self.path}: FAILED: {_count(len(self.problems), 'problem')} in {runs}"
        how = "chain and HMACs intact" if self.signed else "chain intact (HMACs not checked)"
        pruned = "" if self.pruned is None else f" ({_count(self.pruned, 'older record')} pruned)"
        return f"{self.path}: OK: {runs}{pruned}, {how}"

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
        stand_in = number == 1 and record.get("kind") == PRUNED and record["prev"] == GENESIS
        if number == 2 and report.pruned is not None and record["prev"] != expected_prev:
            # Records kept by a prune chain to the last removed one; a record written after a
            # prune that kept none chains to the stand-in itself.
            expected_prev = str(json.loads(lines[0]).get("last_removed_sha256"))
        if stand_in:
            # Stands for the removed records: the next record chains to the last of them.
            report.pruned = int(record.get("removed_records") or 0)
            line_of_hash[str(record.get("last_removed_sha256"))] = 1
        elif seq <= last_seq:
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


class PruneError(Exception):
    """The log cannot be pruned (it does not verify); nothing was changed."""


@dataclass
class PruneReport:
    path: Path
    removed: int
    kept: int
    before: str

    def summary(self) -> str:
        if not self.removed:
            return f"{self.path}: nothing older than {self.before}; {_count(self.kept, 'record')}"
        return (
            f"{self.path}: {_count(self.removed, 'record')} older than {self.before} removed, "
            f"{_count(self.kept, 'record')} kept"
        )


def prune(
    path: str | Path,
    older_than_days: int,
    key: bytes | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_days: int = 0,
) -> PruneReport:
    """Remove the records older than the retention from the start of the log, in place, under
    the lock the callback appends under (a run writing at the same time continues the chain
    after it). When there is something to remove the log must verify first; the original is
    kept beside it until the new one is on disk. dry_run counts and changes nothing. With
    batch_days, nothing is removed until the oldest record is that many days past the retention,
    so a log pruned at every run is checked and rewritten at most once per batch_days.
    PruneError if it does not verify; OSError if unreadable."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be 1 or more")
    path = Path(path)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    before = cutoff.isoformat(timespec="seconds")
    fd = os.open(path, (os.O_RDONLY if dry_run else os.O_RDWR) | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if dry_run else fcntl.LOCK_EX)
        data = path.read_bytes()
        lines, _complete = _split_lines(data)
        first_is_stand_in = bool(lines) and _record(lines[0]).get("kind") == PRUNED
        old = int(first_is_stand_in)
        if old < len(lines) and not _older(
            _record(lines[old]), cutoff - timedelta(days=batch_days)
        ):
            return PruneReport(path, 0, len(lines) - first_is_stand_in, before)
        # Records are in time order: only the first ones are read when nothing is old.
        while old < len(lines) and _older(_record(lines[old]), cutoff):
            old += 1
        if old == 0 or (old == 1 and first_is_stand_in):
            return PruneReport(path, 0, len(lines) - first_is_stand_in, before)
        report = verify(path, key)
        if not report.ok:
            raise PruneError(
                f"{path} does not verify ({_count(len(report.problems), 'problem')}; run "
                "`onprem-llm audit verify`): nothing removed"
            )
        removed = old - first_is_stand_in
        if dry_run:
            return PruneReport(path, removed, len(lines) - old, before)
        total_removed = removed + (report.pruned or 0)
        stand_in = seal(
            {
                "kind": PRUNED,
                "time": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
                "before": before,
                "removed_records": total_removed,
                "last_removed_sha256": line_hash(lines[old - 1]),
            },
            json.loads(lines[old - 1])["seq"],
            GENESIS,
            key,
        )
        content = b"\n".join([stand_in, *lines[old:]]) + b"\n"
        backup = path.with_name(path.name + ".before-prune")
        backup.write_bytes(data)
        backup.chmod(0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, content, 0)
        os.fsync(fd)
        backup.unlink()
        return PruneReport(path, removed, len(lines) - old, before)
    finally:
        os.close(fd)


def _record(line: bytes) -> dict[str, Any]:
    """A line's record, or {} for a line that is not a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _older(record: dict[str, Any], cutoff: datetime) -> bool:
    try:
        when = datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < cutoff
