"""`onprem-llm audit verify` and onprem_llm.audit.verify on hand-made audit logs: each kind of
tampering is found and named by its line; the chain code is the collection's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli
from onprem_llm.collection_utils import _audit_chain
from onprem_llm.collection_utils._audit_chain import GENESIS, canonical_json, line_hash, seal

from onprem_llm import audit
from onprem_llm.results import ExitCode

REPO_ROOT = Path(__file__).resolve().parents[3]
KEY = b"k" * 32


def chain(count: int, key: bytes | None = None, start: int = 1, prev: str = GENESIS) -> list[bytes]:
    """Lines of `count` task records chained from `prev`."""
    lines = []
    for seq in range(start, start + count):
        record = {"kind": "task", "run": "run-1", "host": f"node{seq}", "outcome": "ok"}
        lines.append(seal(record, seq, prev, key))
        prev = line_hash(lines[-1])
    return lines


def write(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(b"\n".join(lines) + end)
    return path


def problems(path: Path, key: bytes | None = None) -> list[str]:
    return [str(problem) for problem in audit.verify(path, key).problems]


def test_the_package_runs_the_collections_chain_code() -> None:
    # One copy of the canonical bytes: the verifier cannot drift from the callback.
    shared = REPO_ROOT / "plugins" / "module_utils" / "_audit_chain.py"
    assert Path(_audit_chain.__file__).resolve() == shared.resolve()


def test_canonical_json_is_sorted_compact_ascii() -> None:
    assert canonical_json({"b": 1, "a": ["é", 2.5]}) == b'{"a":["\\u00e9",2.5],"b":1}'
    assert canonical_json({"a": {"y": 1, "x": 2}}) == canonical_json({"a": {"x": 2, "y": 1}})


def test_an_intact_chain_verifies(tmp_path: Path) -> None:
    report = audit.verify(write(tmp_path / "a.jsonl", chain(5)))
    assert report.ok and report.records == 5 and report.runs == 1 and not report.signed
    assert report.summary().endswith("OK: 5 records of 1 run, chain intact (HMACs not checked)")
    signed = audit.verify(write(tmp_path / "b.jsonl", chain(5, KEY)), KEY)
    assert signed.ok and signed.signed


def test_an_empty_file_verifies(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert audit.verify(path).ok


def test_an_edited_record_is_named_by_the_next_records_prev(tmp_path: Path) -> None:
    lines = chain(6)
    lines[2] = lines[2].replace(b'"outcome":"ok"', b'"outcome":"failed"')
    assert problems(write(tmp_path / "a.jsonl", lines)) == [
        "line 3: record edited (its hash does not match line 4's prev)"
    ]


def test_an_edited_record_with_its_chain_recomputed_fails_the_hmac(tmp_path: Path) -> None:
    # Without the key an editor can rebuild the chain, not the HMACs.
    lines = chain(3, KEY)
    edited = json.loads(lines[1])
    edited["outcome"] = "failed"
    lines[1] = seal(edited, 2, edited["prev"], b"x" * 32)
    lines[2] = seal(json.loads(lines[2]), 3, line_hash(lines[1]), b"x" * 32)
    path = write(tmp_path / "a.jsonl", lines)
    assert problems(path) == []
    assert problems(path, KEY) == [
        "line 2: record edited (its hmac does not match)",
        "line 3: record edited (its hmac does not match)",
    ]


def test_an_edited_last_record_fails_the_hmac(tmp_path: Path) -> None:
    lines = chain(3, KEY)
    lines[2] = lines[2].replace(b'"outcome":"ok"', b'"outcome":"failed"')
    assert problems(write(tmp_path / "a.jsonl", lines), KEY) == [
        "line 3: record edited (its hmac does not match)"
    ]


def test_a_deleted_record_is_a_seq_gap(tmp_path: Path) -> None:
    lines = chain(6)
    del lines[3]
    assert problems(write(tmp_path / "a.jsonl", lines)) == [
        "line 4: 1 record deleted before it (seq jumps from 3 to 5)"
    ]


def test_deleted_first_records_are_a_gap_at_line_1(tmp_path: Path) -> None:
    assert problems(write(tmp_path / "a.jsonl", chain(6)[2:])) == [
        "line 1: 2 records deleted before it (seq jumps from 0 to 3)"
    ]


def test_swapped_records_are_out_of_order(tmp_path: Path) -> None:
    lines = chain(6)
    lines[2], lines[3] = lines[3], lines[2]
    assert problems(write(tmp_path / "a.jsonl", lines)) == [
        "line 3: out of order (seq 4 where 3 was expected; seq 3 is on line 4)",
        "line 4: out of order (seq 3 comes after seq 4)",
    ]


def test_a_truncated_last_line_is_named(tmp_path: Path) -> None:
    lines = chain(4)
    path = write(tmp_path / "a.jsonl", [*lines[:3], lines[3][:40]], end=b"")
    assert problems(path) == ["line 4: truncated (the last line has no line end)"]


def test_a_restarted_segment_is_checked_but_the_bad_line_still_fails(tmp_path: Path) -> None:
    # What the callback writes after finding a broken last line: a chain_restart that links
    # to the broken line's bytes and continues the seq of the last good record.
    lines = [*chain(3), b'{"kind":"task","ru']
    restart = {"kind": "chain_restart", "run": "run-2", "bad_line": 4}
    lines.append(seal(restart, 4, line_hash(lines[3]), None))
    lines += chain(2, start=5, prev=line_hash(lines[4]))
    assert problems(write(tmp_path / "a.jsonl", lines)) == [
        "line 4: not an audit record (not JSON, or no seq and prev)"
    ]


def test_a_key_with_unsigned_records_fails_naming_them(tmp_path: Path) -> None:
    signed = chain(3, KEY)
    lines = signed + chain(2, start=4, prev=line_hash(signed[-1]))
    path = write(tmp_path / "a.jsonl", lines)
    assert problems(path) == []
    assert problems(path, KEY) == ["line 4: no hmac, but a key was given (lines 4-5)"]


def test_the_wrong_key_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", chain(4, KEY))
    [only] = problems(path, b"w" * 32)
    assert only == "line 1: no record's hmac matches the key (the wrong key?)"


def test_cli_prints_one_line_per_problem_then_a_summary(tmp_path: Path) -> None:
    lines = chain(5)
    del lines[1]
    path = write(tmp_path / "a.jsonl", lines)
    code, out, _unused = run_cli("audit", "verify", str(path))
    assert code == ExitCode.ERROR
    assert out.splitlines() == [
        "line 2: 1 record deleted before it (seq jumps from 1 to 3)",
        f"{path}: FAILED: 1 problem in 4 records of 1 run",
    ]
    code, out, _unused = run_cli("audit", "verify", str(path), "--json")
    assert code == ExitCode.ERROR
    document = json.loads(out)
    assert document["ok"] is False
    assert document["problems"] == [
        {"line": 2, "message": "1 record deleted before it (seq jumps from 1 to 3)"}
    ]


def test_cli_checks_hmacs_with_a_key_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", chain(3, KEY))
    key_file = tmp_path / "key"
    key_file.write_text(KEY.decode() + "\n")  # the line end is not part of the key
    code, out, err = run_cli("audit", "verify", str(path), "--key-file", str(key_file))
    assert (code, err) == (ExitCode.OK, "")
    assert out == f"{path}: OK: 3 records of 1 run, chain and HMACs intact\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.jsonl"], "missing.jsonl: No such file or directory"),
        (["a.jsonl", "--key-file", "short"], "--key-file: the key in"),
        (["a.jsonl", "--key-file", "nokey"], "--key-file: nokey: No such file or directory"),
        ([], "the following arguments are required: FILE"),
    ],
)
def test_cli_usage_errors_exit_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.jsonl", chain(2))
    (tmp_path / "short").write_text("too short\n")
    code, out, err = run_cli("audit", "verify", *argv)
    assert code == ExitCode.USAGE
    assert message in err and out == ""
