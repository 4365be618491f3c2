"""Tamper-evident audit trail of playbook runs: who ran what, where, and what it changed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: audit_log
type: notification
short_description: Write a tamper-evident audit trail of playbook runs
description:
  - Appends JSON lines to a file, and sends each to syslog, for every playbook run.
  - A C(run_start) record names the controller user (and C(SUDO_USER)), the controller host,
    the collection version and git commit, the playbooks, inventories, limit, tags, check and
    diff mode, and the B(names) of the extra variables, never their values.
  - One C(task) record per task and host result (a loop gives one record, not one per item)
    holds the play, task, action, host, outcome, changed and duration, and C(args_sha256), the
    sha256 of the task's arguments. Arguments and results are never written. A task with
    C(no_log) gives only host, outcome, changed and duration.
  - A C(run_end) record holds per-host stats and whether the run succeeded.
  - Records are chained (C(seq), and C(prev), the sha256 of the previous line) and, with
    O(key_file), signed with HMAC-SHA256. C(onprem-llm audit verify FILE) checks a file.
  - The callback never fails a play. On any error it warns once and stops recording.
author: onprem.llm maintainers (@onprem-llm)
requirements:
  - enabled in C(callbacks_enabled); the collection's ansible.cfg and the onprem-llm command
    enable it
options:
  path:
    description:
      - The JSON-lines file records are appended to. It is created with mode 0600 and its
        directory with mode 0700. A file that already holds records has its chain continued.
    type: path
    default: ~/.ansible/onprem-llm-audit.jsonl
    env:
      - name: ONPREM_LLM_AUDIT_LOG
    ini:
      - section: callback_audit_log
        key: path
  key_file:
    description:
      - A file holding the HMAC key as text, at least 32 bytes. Keep it mode 0600, for
        example written from the vault before a run.
      - Without it records are chained but not signed, and each run warns about that. A key
        that cannot be read or is too short disables the callback with a warning.
    type: path
    env:
      - name: ONPREM_LLM_AUDIT_KEY_FILE
    ini:
      - section: callback_audit_log
        key: key_file
  syslog:
    description:
      - Also send each record to syslog (facility user, ident C(onprem-llm-audit)), when the
        controller has a syslog socket (C(/dev/log)).
    type: bool
    default: true
    env:
      - name: ONPREM_LLM_AUDIT_SYSLOG
    ini:
      - section: callback_audit_log
        key: syslog
  fsync:
    description: Sync the file to disk after each record (slower; survives a power loss).
    type: bool
    default: false
    env:
      - name: ONPREM_LLM_AUDIT_FSYNC
    ini:
      - section: callback_audit_log
        key: fsync
"""

import contextlib
import fcntl
import functools
import getpass
import json
import os
import socket
import subprocess
import syslog
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible import context
from ansible.module_utils.common.yaml import yaml_load
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.onprem.llm.plugins.module_utils._audit_chain import (
    GENESIS,
    AuditKeyError,
    canonical_json,
    chain_position,
    line_hash,
    load_key,
    seal,
)

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
SYSLOG_IDENT = "onprem-llm-audit"
SYSLOG_SOCKETS = ("/dev/log", "/var/run/syslog")
_GIT_TIMEOUT_S = 2
_TAIL_CHUNK = 64 * 1024
_KEY_FILE_SOURCES = "ONPREM_LLM_AUDIT_KEY_FILE or [callback_audit_log] key_file"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def collection_version(root: Path = COLLECTION_ROOT) -> str | None:
    """From galaxy.yml in a checkout, MANIFEST.json in an installed collection."""
    try:
        if (root / "galaxy.yml").is_file():
            return str(yaml_load((root / "galaxy.yml").read_text())["version"])
        if (root / "MANIFEST.json").is_file():
            manifest = json.loads((root / "MANIFEST.json").read_text())
            return str(manifest["collection_info"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def collection_commit(root: Path = COLLECTION_ROOT) -> str | None:
    """HEAD of the git checkout the collection is, or None (not a checkout, no git)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    # A collection installed inside some other repository is not that repository's commit.
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1]


def _is_no_log(result: Any) -> bool:
    no_log = result.task.no_log
    if isinstance(no_log, str):  # an unrendered template: assume the worst
        return no_log.strip().lower() not in ("", "false", "no", "0")
    if no_log:
        return True
    # Ansible censored the result or one of its loop items (no_log from the play context or
    # per item). _check_key reads the result without the copy `result.result` makes.
    check_key = getattr(result, "_check_key", None)
    if check_key is not None:
        return check_key("censored") or check_key("_ansible_no_log")
    returned = result.result
    return "censored" in returned or bool(returned.get("_ansible_no_log"))


def _args_sha256(args: Any) -> str | None:
    try:
        return line_hash(canonical_json(args))
    except (TypeError, ValueError):  # keys that cannot be sorted together
        return None


class ChainedFile:
    """Appends sealed records under an exclusive lock, continuing the file's chain even when
    other runs append to it at the same time."""

    def __init__(self, path: Path, key: bytes | None, fsync: bool) -> None:
        self.path = path
        self._key = key
        self._fsync = fsync
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        self._end = -1  # file size after our last write; -1 until the chain is read
        self._size = 0  # file size while the lock is held
        self._seq = 0
        self._prev = GENESIS

    def append(self, record: dict[str, Any]) -> tuple[bytes, str | None]:
        """Write the record; returns its line and a warning when the chain had to restart."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._size = size = os.fstat(self._fd).st_size
            restarted = None
            if size != self._end:
                restarted = self._read_chain(size, record.get("run"))
            return self._write(record), restarted
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, record: dict[str, Any]) -> bytes:
        line = seal(record, self._seq + 1, self._prev, self._key)
        self._write_bytes(line + b"\n")
        self._seq += 1
        self._prev = line_hash(line)
        return line

    def _write_bytes(self, data: bytes) -> None:
        """Append under the lock: the file then ends where this write ended."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        if self._fsync:
            os.fsync(self._fd)
        self._end = self._size + len(data)
        self._size = self._end

    def _tail(self, size: int) -> bytes:
        """The last line without its line end (the bytes after the last newline if the file
        does not end with one)."""
        end = size - 1 if os.pread(self._fd, 1, size - 1) == b"\n" else size
        start, tail = end, b""
        while start > 0 and b"\n" not in tail:
            start = max(0, start - _TAIL_CHUNK)
            tail = os.pread(self._fd, end - start, start)
        return tail.rsplit(b"\n", 1)[-1]

    def _read_chain(self, size: int, run: Any) -> str | None:
        """Continue after the file's last record; a broken last line starts a new segment."""
        if size == 0:
            self._seq, self._prev = 0, GENESIS
            return None
        last = self._tail(size)
        complete = os.pread(self._fd, 1, size - 1) == b"\n"
        seq = chain_position(last) if complete else None
        if seq is not None:
            self._seq, self._prev = seq, line_hash(last)
            return None
        if not complete:
            self._write_bytes(b"\n")  # end the broken line so it stays a line of its own
        lines = self._read_all().split(b"\n")[:-1]
        positions = (chain_position(line) for line in reversed(lines))
        self._seq = next((seq for seq in positions if seq is not None), 0)
        self._prev = line_hash(lines[-1])
        bad_line = len(lines)
        reason = "truncated" if not complete else "not a valid record"
        self._write({"kind": "chain_restart", "run": run, "time": _now(), "bad_line": bad_line})
        return f"{self.path}: line {bad_line} is {reason}; a new chain segment starts after it"

    def _read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(self._fd, min(1 << 20, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """The audit trail must never break a run: an error disables the callback instead."""

    @functools.wraps(method)
    def wrapper(self: CallbackModule, *args: Any, **kwargs: Any) -> None:
        if self.disabled:
            return
        try:
            method(self, *args, **kwargs)
        except Exception as error:  # any failure is reported, never raised
            self._disable(f"{type(error).__name__}: {error}")

    return wrapper


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "onprem.llm.audit_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_id = str(uuid.uuid4())
        self._file: ChainedFile | None = None
        self._key: bytes | None = None
        self._syslog = True
        self._play = ""
        self._run_started = 0.0
        self._task_started: dict[str, float] = {}
        self._host_started: dict[tuple[str, str], float] = {}

    def _disable(self, why: str) -> None:
        self.disabled = True
        self._display.warning(f"{self.CALLBACK_NAME}: audit trail disabled for this run: {why}")
        if self._file is not None:
            self._file.close()

    def set_options(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().set_options(*args, **kwargs)
            self._syslog = bool(self.get_option("syslog"))
            key_file = self.get_option("key_file")
        except Exception as error:
            self._disable(f"bad option: {error}")
            return
        if not key_file:
            self._display.warning(
                f"{self.CALLBACK_NAME}: no key_file ({_KEY_FILE_SOURCES}): audit records are"
                " chained but not authenticated"
            )
            return
        try:
            self._key = load_key(key_file)
            shared = os.stat(key_file).st_mode & 0o077
        except (OSError, AuditKeyError) as error:
            self._disable(f"option key_file ({_KEY_FILE_SOURCES}): {error}")
            return
        if shared:  # whoever reads the key can forge records
            self._display.warning(
                f"{self.CALLBACK_NAME}: key_file {key_file} is readable by others: chmod 600 it"
            )

    def _record(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line, restarted = self._file.append(record)
        if restarted:
            self._display.warning(f"{self.CALLBACK_NAME}: {restarted}")
        if self._syslog:
            # The file is the record; syslog is a copy whose failures do not count.
            with contextlib.suppress(Exception):
                syslog.syslog(syslog.LOG_INFO, line.decode("ascii"))

    @_guarded
    def v2_playbook_on_start(self, playbook: Any) -> None:
        if self._file is not None:  # the next playbook of the same run
            return
        self._run_started = time.monotonic()
        self._file = ChainedFile(
            Path(self.get_option("path")), self._key, bool(self.get_option("fsync"))
        )
        # Without a syslog socket every record would retry the connection in vain.
        self._syslog = self._syslog and any(os.path.exists(p) for p in SYSLOG_SOCKETS)
        if self._syslog:
            syslog.openlog(SYSLOG_IDENT, syslog.LOG_PID, syslog.LOG_USER)
        args = context.CLIARGS
        plays = playbook.get_plays()
        extra_vars = plays[0].get_variable_manager().extra_vars if plays else {}
        self._record(
            {
                "kind": "run_start",
                "run": self.run_id,
                "time": _now(),
                "user": getpass.getuser(),
                "sudo_user": os.environ.get("SUDO_USER"),
                "controller": socket.gethostname(),
                "collection_version": collection_version(),
                "collection_commit": collection_commit(),
                "playbooks": [os.path.abspath(p) for p in args.get("args") or ()],
                "inventory": list(args.get("inventory") or ()),
                "limit": args.get("subset"),
                "tags": list(args.get("tags") or ()),
                "skip_tags": list(args.get("skip_tags") or ()),
                "check": bool(args.get("check")),
                "diff": bool(args.get("diff")),
                # Names only: values may be secrets.
                "extra_vars_keys": sorted(str(name) for name in extra_vars),
                "ansible_version": ansible_version,
            }
        )

    @_guarded
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name()

    @_guarded
    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task_started[task._uuid] = time.monotonic()

    @_guarded
    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task_started[task._uuid] = time.monotonic()

    @_guarded
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._host_started[(host.get_name(), task._uuid)] = time.monotonic()

    @_guarded
    def v2_runner_on_ok(self, result: Any) -> None:
        self._task_result(result, "ok")

    @_guarded
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._task_result(result, "failed", ignored=ignore_errors)

    @_guarded
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._task_result(result, "skipped")

    @_guarded
    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._task_result(result, "unreachable")

    def _task_result(self, result: Any, outcome: str, ignored: bool = False) -> None:
        task, host = result.task, result.host.get_name()
        started = self._host_started.pop((host, task._uuid), None)
        if started is None:
            started = self._task_started.get(task._uuid, time.monotonic())
        record: dict[str, Any] = {"kind": "task", "run": self.run_id, "time": _now()}
        if _is_no_log(result):
            record["no_log"] = True
        else:
            record["play"] = self._play
            record["task"] = task.get_name()
            record["action"] = task.resolved_action or task.action
            record["args_sha256"] = _args_sha256(task.args)
            if ignored:
                record["ignored"] = True
        record.update(
            host=host,
            outcome=outcome,
            changed=result.is_changed(),
            duration=round(time.monotonic() - started, 3),
        )
        self._record(record)

    @_guarded
    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            summary["failed"] = summary.pop("failures")
            hosts[host] = summary
        self._record(
            {
                "kind": "run_end",
                "run": self.run_id,
                "time": _now(),
                "duration": round(time.monotonic() - self._run_started, 3),
                "hosts": hosts,
                "success": all(s["failed"] == 0 and s["unreachable"] == 0 for s in hosts.values()),
            }
        )
        if self._file is not None:
            self._file.close()
            self._file = None
