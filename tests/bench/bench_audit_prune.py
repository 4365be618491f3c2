"""Time the retention of playbook runs on a large audit log (what every run of the audit role
pays on the controller).

A script, not a test: `python tests/bench/bench_audit_prune.py [--records N]`. Writes a signed
log of N task records spread over 400 days with the callback's own writer, then times a prune
that finds nothing old (every run but the first after a day), one in check mode, and one that
removes the records older than 365 days (verify, then rewrite), and one as the audit role runs
it a little later (batch_days=1: nothing is done until the oldest record is a day past).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
from ansible_collections.onprem.llm.plugins.callback.audit_log import (
    ChainedFile,
)
from ansible_collections.onprem.llm.plugins.module_utils._audit_chain import (
    prune,
)

KEY = b"bench-key-0123456789abcdef0123456789"


def write_log(path: Path, records: int) -> None:
    writer = ChainedFile(path, KEY, fsync=False)
    start = datetime.now(UTC) - timedelta(days=400)
    step = timedelta(days=400) / records
    for number in range(records):
        writer.append(
            {
                "kind": "task",
                "run": f"run-{number // 2000}",
                "time": (start + step * number).isoformat(timespec="milliseconds"),
                "play": "Converge the GPU nodes",
                "task": "Install the driver packages",
                "action": "ansible.builtin.apt",
                "host": f"gpu-{number % 100}",
                "outcome": "ok",
                "changed": False,
                "duration": 0.42,
                "args_sha256": "0" * 64,
            }
        )
    writer.close()


def timed(label: str, days: int, path: Path, dry_run: bool = False, batch_days: int = 0) -> None:
    started = time.perf_counter()
    report = prune(path, days, KEY, dry_run=dry_run, batch_days=batch_days)
    seconds = time.perf_counter() - started
    print(f"{label:<34} {seconds:8.3f} s   removed {report.removed:>8}   kept {report.kept:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    try:
        path = workdir / "audit.jsonl"
        write_log(path, args.records)
        size = path.stat().st_size / 1e6
        print(f"{args.records} records, {size:.1f} MB (about {args.records // 2000} site runs)")
        timed("nothing old (retention 500 days)", 500, path)
        timed("check mode (retention 365 days)", 365, path, dry_run=True)
        timed("prune (retention 365 days)", 365, path)
        timed("again, nothing old", 365, path)
        timed("as the role runs it (a day's batch)", 364, path, batch_days=1)
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
