"""`onprem-llm audit prune`: the retention of playbook-run records. Old records leave the start of
the log, a signed record stands in for them, the records kept still verify, a writer that holds
the file open continues the chain, and tampering after a prune is still found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible_collections.onprem.llm.plugins.callback.audit_log import ChainedFile
from cli_runner import run_cli

from onprem_llm import audit

KEY = b"k" * 32
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def log(path: Path, ages_in_days: list[int], key: bytes | None = KEY) -> ChainedFile:
    """A log with one task record per age, oldest first, written by the callback's writer."""
    writer = ChainedFile(path, key, fsync=False)
    for number, age in enumerate(ages_in_days):
        when = (NOW - timedelta(days=age)).isoformat(timespec="milliseconds")
        writer.append({"kind": "task", "run": f"run-{age}", "time": when, "host": f"n{number}"})
    return writer


def problems(path: Path, key: bytes | None = KEY) -> list[str]:
    return [str(problem) for problem in audit.verify(path, key).problems]


def test_old_records_are_removed_and_the_rest_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [400, 380, 370, 100, 3, 0]).close()
    report = audit.prune(path, 365, KEY, now=NOW)
    assert (report.removed, report.kept) == (3, 3)
    assert "3 records older than 2025-12-05T12:00:00+00:00 removed, 3 records kept" in (
        report.summary()
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and '"kind":"pruned"' in lines[0] and '"removed_records":3' in lines[0]
    verified = audit.verify(path, KEY)
    assert verified.ok, verified.problems
    assert verified.pruned == 3 and "(3 older records pruned)" in verified.summary()
    assert not (tmp_path / "audit.jsonl.before-prune").exists()


def test_a_writer_that_held_the_file_open_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = log(path, [400, 10])
    audit.prune(path, 365, KEY, now=NOW)
    writer.append({"kind": "task", "run": "run-now", "time": NOW.isoformat(), "host": "n9"})
    writer.close()
    assert problems(path) == []
    assert len(path.read_text().splitlines()) == 3


def test_a_second_prune_counts_every_removed_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [400, 300, 200, 100]).close()
    assert audit.prune(path, 250, KEY, now=NOW).removed == 2
    assert audit.prune(path, 150, KEY, now=NOW).removed == 1
    assert audit.prune(path, 150, KEY, now=NOW).removed == 0
    assert audit.verify(path, KEY).pruned == 3
    assert problems(path) == []


def test_everything_old_leaves_the_stand_in_and_the_next_run_chains_to_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [500, 400]).close()
    assert audit.prune(path, 30, KEY, now=NOW).kept == 0
    log(path, [0]).close()
    assert problems(path) == []


def test_records_deleted_after_a_prune_are_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [400, 100, 50, 10]).close()
    audit.prune(path, 365, KEY, now=NOW)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(lines[2:]))
    assert problems(path) == ["line 2: 1 record deleted before it (seq jumps from 1 to 3)"]
    # Without the stand-in, the rest does not start a chain.
    path.write_text("".join(lines[1:]))
    assert problems(path) == ["line 1: 1 record deleted before it (seq jumps from 0 to 2)"]


def test_a_changed_stand_in_fails_its_hmac(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [400, 10]).close()
    audit.prune(path, 365, KEY, now=NOW)
    text = path.read_text()
    path.write_text(text.replace('"removed_records":1', '"removed_records":0', 1))
    assert problems(path) == ["line 1: record edited (its hmac does not match)"]


def test_a_log_that_does_not_verify_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [400, 300, 10]).close()
    lines = path.read_text().splitlines(keepends=True)
    tampered = lines[0] + lines[2]
    path.write_text(tampered)
    with pytest.raises(audit.PruneError, match=r"does not verify .*nothing removed"):
        audit.prune(path, 365, KEY, now=NOW)
    assert path.read_text() == tampered


def test_cli_prunes_with_the_key_and_refuses_a_retention_below_one_day(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    log(path, [4000, 0]).close()
    code, out, err = run_cli(
        "audit", "prune", str(path), "--older-than-days", "365", "--key-file", str(key_file)
    )
    assert (code, err) == (0, ""), err
    assert "1 record older than" in out and "1 record kept" in out
    code, out, _unused = run_cli("audit", "verify", str(path), "--key-file", str(key_file))
    assert code == 0 and "(1 older record pruned)" in out
    code, _unused, err = run_cli("audit", "prune", str(path), "--older-than-days", "0")
    assert code == 5 and "--older-than-days must be 1 or more, got 0" in err


def test_with_batch_days_records_leave_only_once_the_oldest_is_that_far_past(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    log(path, [365, 300]).close()
    before = path.read_bytes()
    # 365 days old: a day past a retention of 364 days, not more; two days past 363.
    assert audit.prune(path, 364, KEY, now=NOW, batch_days=1).removed == 0
    assert path.read_bytes() == before
    assert audit.prune(path, 363, KEY, now=NOW, batch_days=1).removed == 1
    assert problems(path) == []
