"""The onprem-llm command line. See docs/cli.md."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ansible_runner.exceptions import AnsibleRunnerException

from onprem_llm import __version__, api, audit, lab
from onprem_llm.catalog import (
    API_PRICES,
    DEFAULT_API,
    DEFAULT_REQUEST_SHAPE,
    MODELS,
    PLATFORMS,
    REQUEST_SHAPES,
)
from onprem_llm.collection_utils._audit_chain import AuditKeyError, load_key
from onprem_llm.collection_utils._placement import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_KV_CACHE_HEADROOM,
    PlacementInputError,
    model_from_dict,
)
from onprem_llm.costs import CostInputs
from onprem_llm.decision import OPS_LEVELS, SOVEREIGNTY_LEVELS, Factors
from onprem_llm.planner import NoFitError, PlanInputs, make_plan, render_plan, write_chart
from onprem_llm.progress import MODES, interactive, make_progress
from onprem_llm.results import ExitCode, RunResult
from onprem_llm.runner import DEFAULT_ROTATE_ARTIFACTS, RunOptions, UsageError
from onprem_llm.secrets import VAULT_PASSWORD_ENV, SecretError, VaultPassword
from onprem_llm.sizing import Architecture, Workload
from onprem_llm.tables import render_table

PROG = "onprem-llm"
EXIT_CODES = """exit codes:
  0    success
  1    the run failed outside any host (syntax error, missing file, podman missing);
       audit verify: the file does not verify; audit prune: it does not verify, nothing removed
  2    a task failed on at least one host
  3    at least one host unreachable, none failed
  5    bad command line or input; nothing ran
  124  --timeout passed
  130  canceled (Ctrl-C or SIGTERM)
"""


class Parser(argparse.ArgumentParser):
    """Usage errors exit with ExitCode.USAGE, not argparse's 2 (which means failed hosts)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def _extra_vars_file(value: str) -> Path:
    path = Path(value[1:] if value.startswith("@") else value)
    if path.is_file():
        return path
    if "=" in value:
        raise argparse.ArgumentTypeError(
            f"{value!r}: give a YAML/JSON file; key=value pairs would put values on command"
            " lines and in artifacts"
        )
    raise argparse.ArgumentTypeError(f"{value}: no such file")


def _run_options(parser: argparse.ArgumentParser, *, inventory: bool) -> None:
    run = parser.add_argument_group("run options")
    if inventory:
        run.add_argument(
            "-i",
            "--inventory",
            action="append",
            required=True,
            help="inventory path (relative to the project dir or absolute); repeatable",
        )
    run.add_argument("-l", "--limit", help="limit to hosts or groups (ansible pattern)")
    run.add_argument("-t", "--tags", help="only tasks with these tags (comma-separated)")
    run.add_argument("--skip-tags", help="skip tasks with these tags")
    run.add_argument("-C", "--check", action="store_true", help="change nothing (check mode)")
    run.add_argument("-D", "--diff", action="store_true", help="show file and template diffs")
    run.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        type=_extra_vars_file,
        default=[],
        metavar="FILE",
        help="extra variables from a YAML/JSON file (may be vault-encrypted); repeatable",
    )
    vault = run.add_mutually_exclusive_group()
    vault.add_argument(
        "--vault-password-file", type=Path, metavar="FILE", help="vault password file or script"
    )
    vault.add_argument(
        "--vault-password-env",
        metavar="NAME",
        help=f"environment variable holding the vault password (default: {VAULT_PASSWORD_ENV},"
        " used when set)",
    )
    run.add_argument("-f", "--forks", type=int, metavar="N", help="parallel hosts (ansible forks)")
    run.add_argument(
        "--timeout", type=int, metavar="SECONDS", help="cancel the run after this many seconds"
    )
    run.add_argument(
        "--project-dir", metavar="DIR", help="collection checkout holding site.yml (default: .)"
    )
    run.add_argument(
        "--artifact-dir",
        type=Path,
        help="where run artifacts are kept"
        " (default: $ONPREM_LLM_ARTIFACT_DIR or ~/.local/state/onprem-llm/artifacts)",
    )
    run.add_argument(
        "--rotate-artifacts",
        type=int,
        default=DEFAULT_ROTATE_ARTIFACTS,
        metavar="N",
        help=f"keep the newest N runs' artifacts; 0 keeps all ({DEFAULT_ROTATE_ARTIFACTS})",
    )
    run.add_argument(
        "--keep-private-data-dir",
        action="store_true",
        help="keep the run's private data dir for debugging (it is removed by default)",
    )
    _output_options(run)
    run.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="live progress on stderr: a bar on a terminal, lines otherwise (default: auto)",
    )


def _output_options(group: Any) -> None:
    group.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _request_volume(text: str) -> float | int:
    """--requests-per-month: 0, or from one request to 1e10 (a fraction of one request a month
    is no volume; it would make the cost per request overflow)."""
    value = _ranged(0, 1e10)(text)
    if 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be 0 or at least 1, got {text}")
    return value


def _ranged(
    low: float, high: float, *, integer: bool = False, low_open: bool = False
) -> Callable[[str], float | int]:
    """An argparse type: a finite number in range; argparse names the flag in the error."""

    def parse(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if integer and value != int(value):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            if low_open and (low, high) == (0, 1):
                bounds = "above 0 and at most 1"
            elif too_low:
                bounds = f"greater than {low:g}" if low_open else f"{low:g} or more"
            else:
                bounds = f"at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return int(value) if integer else value

    return parse


_POSITIVE_INT = {"integer": True, "low_open": True}


def _plan_options(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODELS), help="a known model's parameters")
    model.add_argument(
        "--params-b",
        type=_ranged(0, 10_000, low_open=True),
        help="parameters in billions (MoE: total)",
    )
    model.add_argument(
        "--active-params-b",
        type=_ranged(0, 10_000, low_open=True),
        help="parameters each token uses (MoE); default: all, or the preset's",
    )
    model.add_argument("--layers", type=_ranged(0, 1_000, **_POSITIVE_INT))
    model.add_argument("--hidden-size", type=_ranged(0, 131_072, **_POSITIVE_INT))
    model.add_argument("--attention-heads", type=_ranged(0, 1_024, **_POSITIVE_INT))
    model.add_argument(
        "--kv-heads", type=_ranged(0, 1_024, **_POSITIVE_INT), help="KV heads (MLA: 1)"
    )
    model.add_argument("--dtype", default="bf16", help="weight type: bf16, fp8, int4... (bf16)")
    model.add_argument("--quantization", help="awq, gptq, fp8, int4...: sets the weight size")
    model.add_argument(
        "--context",
        type=_ranged(0, 10_485_760, **_POSITIVE_INT),
        default=8192,
        help="max tokens per sequence, the engine's max_model_len (8192)",
    )
    model.add_argument(
        "--kv-bytes-per-token", type=_ranged(0, 1e8, low_open=True), help="KV cache bytes/token"
    )
    model.add_argument(
        "--kv-cache-headroom",
        type=_ranged(0, 10),
        default=DEFAULT_KV_CACHE_HEADROOM,
        help=f"KV/activation memory as a fraction of weights ({DEFAULT_KV_CACHE_HEADROOM})",
    )
    model.add_argument(
        "--gpu-memory-utilization",
        type=_ranged(0, 1, low_open=True),
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
    )
    load = parser.add_argument_group("workload")
    load.add_argument("--requests-per-month", type=_request_volume, required=True)
    load.add_argument(
        "--concurrency",
        type=_ranged(0, 10_000_000, integer=True),
        help="peak concurrent sequences to hold at least (else derived)",
    )
    load.add_argument(
        "--peak-to-average", type=_ranged(1, 100), default=2.0, help="peak/average load (2)"
    )
    load.add_argument(
        "--request-shape",
        choices=sorted(REQUEST_SHAPES),
        default=DEFAULT_REQUEST_SHAPE,
        help=f"prompt and completion tokens of a typical request ({DEFAULT_REQUEST_SHAPE})",
    )
    load.add_argument("--prompt-tokens", type=_ranged(0, 10_485_760, **_POSITIVE_INT))
    load.add_argument("--completion-tokens", type=_ranged(0, 1_000_000, **_POSITIVE_INT))
    load.add_argument(
        "--ttft-slo", type=_ranged(0, 3600, low_open=True), default=2.0, help="seconds, p95 (2)"
    )
    load.add_argument(
        "--tokens-per-second-slo",
        type=_ranged(0, 10_000, low_open=True),
        default=20.0,
        help="output tokens per second each user sees (20)",
    )
    load.add_argument(
        "--max-num-seqs", type=_ranged(0, 65_536, **_POSITIVE_INT), default=256,
        help="engine's sequence cap (256)",
    )  # fmt: skip
    load.add_argument(
        "--min-instances", type=_ranged(0, 100_000, **_POSITIVE_INT), default=1,
        help="at least this many (1)",
    )  # fmt: skip
    cost = parser.add_argument_group("cost (USD)")
    cost.add_argument("--platform", choices=["auto", *PLATFORMS], default="auto")
    cost.add_argument(
        "--api", choices=sorted(API_PRICES), default=DEFAULT_API, help="API price preset"
    )
    cost.add_argument("--api-input-price", type=_ranged(0, 10_000), help="$ per 1M input tokens")
    cost.add_argument("--api-output-price", type=_ranged(0, 10_000), help="$ per 1M output tokens")
    cost.add_argument(
        "--api-cost-per-request",
        type=_ranged(0, 1_000, low_open=True),
        help="a flat API price per request instead of tokens",
    )
    cost.add_argument("--capex-per-system", type=_ranged(0, 1e9), help="server or rack price")
    cost.add_argument(
        "--power-kw-per-system", type=_ranged(0, 10_000), help="full-load power of a system"
    )
    defaults = CostInputs(requests_per_month=0)
    ranges = {
        "amortisation_months": _ranged(1, 240, integer=True),
        "electricity_per_kwh": _ranged(0, 100),
        "pue": _ranged(1, 5),
        "utilisation": _ranged(0, 1, low_open=True),
        "idle_power_fraction": _ranged(0, 1),
        "cooling_per_month": _ranged(0, 1e9),
        "staff_per_month": _ranged(0, 1e7),
        "nodes_per_engineer": _ranged(0, 10_000, low_open=True),
        "min_engineers": _ranged(0, 1_000),
        "support_fraction_per_year": _ranged(0, 1),
        "colocation_per_kw_month": _ranged(0, 1e5),
        "network_per_node_month": _ranged(0, 1e7),
        "other_opex_per_month": _ranged(0, 1e9),
    }
    for name, parse in ranges.items():
        default = getattr(defaults, name)
        cost.add_argument(
            f"--{name.replace('_', '-')}",
            type=parse,
            default=default,
            help=f"(default: {default:g})",
        )
    decide = parser.add_argument_group("decision factors")
    decide.add_argument("--data-sovereignty", choices=SOVEREIGNTY_LEVELS, default="none")
    decide.add_argument("--ops-capacity", choices=OPS_LEVELS, default="limited")
    decide.add_argument("--latency-sensitive", action="store_true")
    decide.add_argument("--fine-tuning", action="store_true")
    _output_options(parser)
    parser.add_argument(
        "--chart", metavar="FILE.png", help="draw monthly cost against volume (needs matplotlib)"
    )


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Drive the onprem.llm collection through ansible-runner, and plan GPU"
        " sizing and cloud-vs-on-prem cost.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (
        ("deploy", "converge the site (site.yml)"),
        ("check", "show what deploy would change (check mode with diffs)"),
        ("rolling-restart", "restart engines one node at a time, drained at the gateway"),
        ("validate", "run the acceptance gates"),
    ):
        _run_options(
            commands.add_parser(name, help=help_text, description=help_text), inventory=True
        )
    plan = commands.add_parser(
        "plan",
        help="GPU sizing, cost, break-even and a recommendation",
        description="Size a model on H100, H200, B200 and GB200 from memory and throughput,"
        " compare the cost with a cloud API, on-prem and hybrid, and recommend one."
        " Model, sources and calibration: docs/planner.md.",
    )
    _plan_options(plan)
    lab_parser = commands.add_parser("lab", help="the local lab: up, down, status")
    lab_commands = lab_parser.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    _run_options(
        lab_commands.add_parser("up", help="create the lab containers and deploy to them"),
        inventory=False,
    )
    _run_options(lab_commands.add_parser("down", help="remove the lab"), inventory=False)
    status = lab_commands.add_parser("status", help="list the lab containers")
    _output_options(status)
    cache = commands.add_parser("cache", help="the gateways' response cache: purge, evict")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    purge_help = "delete a tenant's response-cache entries (playbooks/cache_purge.yml)"
    purge = cache_commands.add_parser("purge", help=purge_help, description=purge_help)
    what = purge.add_argument_group("what to delete")
    what.add_argument("--tenant", required=True, help="the tenant whose entries are deleted")
    what.add_argument("--model", default="", help="only this served model's (default: every)")
    what.add_argument(
        "--older-than",
        default="",
        metavar="DURATION",
        help="only entries older than this: seconds, or 90m, 12h, 7d, 2w (default: all)",
    )
    _run_options(purge, inventory=True)
    evict_help = (
        "undo a wrong semantic-cache hit: delete the cached answer a request got, by its request"
        " id (playbooks/cache_evict.yml)"
    )
    evict = cache_commands.add_parser("evict", help=evict_help, description=evict_help)
    evict.add_argument("request_id", metavar="REQUEST_ID", help="the X-Request-ID of the answer")
    _run_options(evict, inventory=True)
    erase_help = (
        "remove a tenant's request and content records from every gateway and its cached answers,"
        " or only one user's records with --user, and record the erasure"
        " (playbooks/erase_tenant.yml)"
    )
    erase = commands.add_parser("erase", help=erase_help, description=erase_help)
    erase.add_argument("--tenant", required=True, help="the tenant whose data is erased")
    erase.add_argument(
        "--user",
        default="",
        help="only this user's records (the `user` field of the tenant's requests)",
    )
    _run_options(erase, inventory=True)
    audit_parser = commands.add_parser("audit", help="the playbook-run audit trail: verify, prune")
    audit_commands = audit_parser.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify_help = "check an audit log's hash chain, and its HMACs with --key-file"
    verify = audit_commands.add_parser("verify", help=verify_help, description=verify_help)
    verify.add_argument("file", type=Path, metavar="FILE", help="the audit log (JSON lines)")
    verify.add_argument(
        "--key-file", type=Path, metavar="FILE", help="the HMAC key the callback signed with"
    )
    _output_options(verify)
    prune_help = (
        "remove the records older than the retention from the start of an audit log; the chain "
        "of the records kept still verifies"
    )
    prune = audit_commands.add_parser("prune", help=prune_help, description=prune_help)
    prune.add_argument("file", type=Path, metavar="FILE", help="the audit log (JSON lines)")
    prune.add_argument(
        "--older-than-days",
        type=int,
        required=True,
        metavar="DAYS",
        help="records older than this many days are removed (the retention of playbook runs)",
    )
    prune.add_argument(
        "--key-file",
        type=Path,
        metavar="FILE",
        help="the HMAC key the callback signs with: checks the log first and signs the record "
        "that stands for the removed ones",
    )
    return parser


# --- running playbooks -------------------------------------------------------------------------


def _vault(args: argparse.Namespace) -> VaultPassword | None:
    if args.vault_password_file is not None:
        return VaultPassword(file=args.vault_password_file)
    if args.vault_password_env is not None:
        return VaultPassword(env_var=args.vault_password_env)
    if os.environ.get(VAULT_PASSWORD_ENV):
        return VaultPassword(env_var=VAULT_PASSWORD_ENV)
    return None


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        inventory=tuple(getattr(args, "inventory", None) or ()),
        limit=args.limit,
        tags=args.tags,
        skip_tags=args.skip_tags,
        check=args.check,
        diff=args.diff,
        extra_vars_files=tuple(args.extra_vars),
        vault=_vault(args),
        forks=args.forks,
        timeout=args.timeout,
        artifact_root=args.artifact_dir,
        rotate_artifacts=args.rotate_artifacts,
        keep_private_data_dir=args.keep_private_data_dir,
    )


@contextlib.contextmanager
def _cancel_on_signals(stream: TextIO) -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM ask ansible-runner to stop the run; the summary still prints."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: Any) -> None:
        if not cancel.is_set():
            stream.write("\ncanceling: stopping ansible-playbook and its workers\n")
            stream.flush()
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def render_run(result: RunResult, with_changes: bool = False) -> str:
    """The summary table; with_changes adds the diffs the progress output did not show."""
    lines = []
    if with_changes and result.changes:
        for change in result.changes:
            lines += [f"{change.host} [{change.task}]:", change.diff, ""]
    if result.stats:
        headers = ["host", "ok", "changed", "failed", "unreachable", "skipped", "rescued"]
        headers.append("ignored")
        rows = [
            [host, s.ok, s.changed, s.failed, s.unreachable, s.skipped, s.rescued, s.ignored]
            for host, s in sorted(result.stats.items())
        ]
        lines += [render_table(headers, rows, right=set(range(1, 8))), ""]
    if result.failures:
        rows = [
            [f.host, "unreachable" if f.unreachable else "failed", f.task, f.message]
            for f in result.failures
        ]
        lines += ["Failures:", render_table(["host", "result", "task", "message"], rows), ""]
    if result.error:
        lines += [f"Error: {result.error}", ""]
    lines.append(
        f"{result.action} {result.status} (exit {int(result.exit_code)}) in"
        f" {result.duration_s:.1f} s; artifacts: {result.artifact_dir}"
    )
    return "\n".join(lines)


def _progress_mode(args: argparse.Namespace, stream: TextIO) -> str:
    if args.progress != "auto":
        return str(args.progress)
    if interactive(stream):
        return "bar"
    return "none" if args.json else "lines"


def _run_action(
    args: argparse.Namespace,
    action: Callable[..., Any],
    out: TextIO,
    err: TextIO,
    outcome: Callable[[RunResult], str | None] | None = None,
) -> int:
    """Run an action and print its summary; outcome adds a closing line to the text output."""
    mode = _progress_mode(args, err)
    with _cancel_on_signals(err) as cancel:
        result = action(
            args.project_dir,
            _options(args),
            progress=make_progress(mode, err),
            cancel=cancel,
            plan_progress=mode == "bar",
        )
    if args.json:
        out.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        steps = result.steps if isinstance(result, lab.LabResult) else (result,)
        shown = mode != "none"  # progress has already printed the diffs
        out.write("\n\n".join(render_run(step, not shown) for step in steps) + "\n")
        line = outcome(result) if outcome is not None else None
        if line:
            out.write("\n" + line + "\n")
    return int(result.exit_code)


# --- cache purge -------------------------------------------------------------------------------


def render_cache_purge(result: RunResult, older_than: str = "") -> str:
    """One line: how many entries were deleted, for which tenant and model."""
    report = result.data.get("cache_purge")
    if not isinstance(report, dict) or "deleted" not in report:
        return "cache purge: no count was reported; check the failures above before retrying"
    deleted = report["deleted"]
    noun = "entry" if deleted == 1 else "entries"
    model = report.get("model") or ""
    scope = f"model {json.dumps(model, ensure_ascii=False)}" if model else "every model"
    if older_than:
        scope += f", older than {older_than}"
    tenant = json.dumps(report.get("tenant", ""), ensure_ascii=False)
    return f"cache purge: deleted {deleted} {noun} of tenant {tenant} ({scope})"


def _cache_purge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    action = functools.partial(
        api.cache_purge, tenant=args.tenant, model=args.model, older_than=args.older_than
    )
    outcome = functools.partial(render_cache_purge, older_than=args.older_than)
    return _run_action(args, action, out, err, outcome)


def render_cache_evict(result: RunResult) -> str:
    """One line: whether the request's cached answer was found and deleted."""
    report = result.data.get("cache_evict")
    if not isinstance(report, dict) or "found" not in report:
        return "cache evict: no outcome was reported; check the failures above before retrying"
    request = json.dumps(report.get("request_id", ""), ensure_ascii=False)
    if not report["found"]:
        return (
            f"cache evict: no semantic hit is recorded for request {request} (only semantic hits"
            " are recorded, for as long as their answer is cached)"
        )
    if not report.get("evicted"):
        return f"cache evict: request {request} was a semantic hit; nothing deleted (check mode)"
    return f"cache evict: deleted the cached answer request {request} got, and its vector"


def _cache_evict(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    action = functools.partial(api.cache_evict, request_id=args.request_id)
    return _run_action(args, action, out, err, render_cache_evict)


# --- erase -------------------------------------------------------------------------------------


def render_erase(result: RunResult, user: bool = False) -> str:
    """One line: request and content records removed on how many gateways, and (for a tenant)
    cache entries deleted."""
    records = result.data.get("erase_records")
    cache = result.data.get("cache_purge")
    if not isinstance(records, dict) or not (user or isinstance(cache, dict)):
        return "erase: no count was reported; check the failures above before retrying"
    reports = list(records.values())
    removed = sum(int(report.get("records_removed", 0)) for report in reports)
    content = sum(int(report.get("content_removed", 0)) for report in reports)
    tenant = json.dumps(reports[0].get("tenant", "") if reports else "", ensure_ascii=False)
    gateways = len(records)
    line = (
        f"erase: tenant {tenant}{', one user' if user else ''}: removed {removed} request"
        f" record{'s' * (removed != 1)} and {content} content record{'s' * (content != 1)} on"
        f" {gateways} gateway{'s' * (gateways != 1)}"
    )
    if user:
        return line + "; cached answers are the tenant's and stay until their TTL"
    deleted = cache.get("deleted", 0) if isinstance(cache, dict) else 0
    return line + f", deleted {deleted} cache entr{'ies' if deleted != 1 else 'y'}"


def _erase(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    action = functools.partial(api.erase_tenant, tenant=args.tenant, user=args.user)
    outcome = functools.partial(render_erase, user=bool(args.user))
    return _run_action(args, action, out, err, outcome)


# --- audit verify ------------------------------------------------------------------------------


def _audit_key(args: argparse.Namespace, command: str, err: TextIO) -> bytes | int | None:
    """The key of --key-file, None without one, or the usage exit code after saying why."""
    try:
        return load_key(args.key_file) if args.key_file is not None else None
    except OSError as error:
        err.write(f"{command}: --key-file: {args.key_file}: {error.strerror or error}\n")
    except AuditKeyError as error:
        err.write(f"{command}: --key-file: {error}\n")
    return int(ExitCode.USAGE)


def _audit_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    command = f"{PROG} audit verify"
    key = _audit_key(args, command, err)
    if isinstance(key, int):
        return key
    try:
        report = audit.verify(args.file, key)
    except OSError as error:
        err.write(f"{command}: {args.file}: {error.strerror or error}\n")
        return int(ExitCode.USAGE)
    if args.json:
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.write("".join(f"{problem}\n" for problem in report.problems) + report.summary() + "\n")
    return int(ExitCode.OK if report.ok else ExitCode.ERROR)


def _audit_prune(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    command = f"{PROG} audit prune"
    if args.older_than_days < 1:
        err.write(f"{command}: --older-than-days must be 1 or more, got {args.older_than_days}\n")
        return int(ExitCode.USAGE)
    key = _audit_key(args, command, err)
    if isinstance(key, int):
        return key
    try:
        report = audit.prune(args.file, args.older_than_days, key)
    except OSError as error:
        err.write(f"{command}: {args.file}: {error.strerror or error}\n")
        return int(ExitCode.USAGE)
    except audit.PruneError as error:
        err.write(f"{command}: {error}\n")
        return int(ExitCode.ERROR)
    out.write(report.summary() + "\n")
    return int(ExitCode.OK)


# --- plan and lab status -----------------------------------------------------------------------

_FLAG_FOR_FIELD = {"context_length": "--context", "chart": "--chart"}


def _flag(field: str) -> str:
    name = field.split(".")[-1]
    return _FLAG_FOR_FIELD.get(name, "--" + name.replace("_", "-"))


def _plan_inputs(args: argparse.Namespace) -> PlanInputs:
    preset = MODELS.get(args.model) if args.model else None
    params_b = args.params_b if args.params_b is not None else (preset.params_b if preset else None)
    if params_b is None:
        raise PlacementInputError("params_b", "give --params-b or --model")

    def pick(given: Any, from_preset: Any, fallback: Any) -> Any:
        if given is not None:
            return given
        return from_preset if preset is not None else fallback

    active = pick(args.active_params_b, preset and preset.active_params_b, params_b)
    if active > params_b:
        raise PlacementInputError("active_params_b", f"{active:g} is more than --params-b")
    layers = pick(args.layers, preset and preset.layers, 80)
    # Without a preset: a dense transformer has about 12 x layers x hidden^2 parameters.
    guess = max(64, round(math.sqrt(params_b * 1e9 / (12 * layers)) / 64) * 64)
    kv_bytes = pick(args.kv_bytes_per_token, preset and preset.kv_bytes_per_token, None)
    spec = {
        "name": args.model or f"{params_b:g}b-model",
        "params_b": params_b,
        "dtype": args.dtype,
        "quantization": args.quantization,
        "context_length": args.context,
        "kv_cache_headroom": args.kv_cache_headroom,
        "kv_bytes_per_token": kv_bytes,
        "attention_heads": pick(args.attention_heads, preset and preset.attention_heads, None),
        "kv_heads": pick(args.kv_heads, preset and preset.kv_heads, None),
    }
    if kv_bytes is None:
        raise PlacementInputError(
            "kv_bytes_per_token",
            "needed for the KV cache: 2 x layers x KV heads x head size x bytes, or a --model",
        )
    shape = REQUEST_SHAPES[args.request_shape]
    prompt = args.prompt_tokens if args.prompt_tokens is not None else shape.prompt_tokens
    completion = (
        args.completion_tokens if args.completion_tokens is not None else shape.completion_tokens
    )
    if prompt + completion > args.context:
        raise PlacementInputError(
            "prompt_tokens" if args.prompt_tokens is not None else "context",
            f"a request of {prompt:,} + {completion:,} tokens does not fit a context of"
            f" {args.context:,}",
        )
    costs = CostInputs(
        requests_per_month=args.requests_per_month,
        **{
            name: getattr(args, name)
            for name in (
                "amortisation_months", "electricity_per_kwh", "pue", "utilisation",
                "idle_power_fraction", "cooling_per_month", "staff_per_month",
                "nodes_per_engineer", "min_engineers", "support_fraction_per_year",
                "colocation_per_kw_month", "network_per_node_month", "other_opex_per_month",
            )
        },
    )  # fmt: skip
    return PlanInputs(
        model=model_from_dict(spec),
        arch=Architecture(
            active_params_b=active,
            layers=layers,
            hidden_size=pick(args.hidden_size, preset and preset.hidden_size, guess),
        ),
        requests_per_month=args.requests_per_month,
        workload=Workload(prompt, completion, args.ttft_slo, args.tokens_per_second_slo),
        concurrency=args.concurrency,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs,
        min_instances=args.min_instances,
        platform=args.platform,
        api=args.api,
        api_input_price=args.api_input_price,
        api_output_price=args.api_output_price,
        api_cost_per_request=args.api_cost_per_request,
        capex_per_system=args.capex_per_system,
        power_kw_per_system=args.power_kw_per_system,
        costs=costs,
        factors=Factors(
            data_sovereignty=args.data_sovereignty,
            ops_capacity=args.ops_capacity,
            latency_sensitive=args.latency_sensitive,
            fine_tuning=args.fine_tuning,
            peak_to_average=args.peak_to_average,
        ),
    )


def _plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        plan = make_plan(_plan_inputs(args))
    except NoFitError as error:
        err.write(f"{PROG} plan: no fit: {error}\n")
        return int(ExitCode.ERROR)
    if args.chart:
        write_chart(plan, args.chart)
    if args.json:
        out.write(json.dumps(plan.to_dict(), indent=2, allow_nan=False) + "\n")
    else:
        out.write(render_plan(plan) + "\n")
        if args.chart:
            out.write(f"Chart: {args.chart}\n")
    return int(ExitCode.OK)


def _lab_status(args: argparse.Namespace, out: TextIO) -> int:
    containers = lab.lab_status()
    if args.json:
        document = {"containers": [c.to_dict() for c in containers]}
        out.write(json.dumps(document, indent=2) + "\n")
    elif not containers:
        out.write(f"no containers labelled {lab.LAB_LABEL}; bring the lab up with: lab up\n")
    else:
        rows = [[c.name, c.state, c.status, c.image, c.ports] for c in containers]
        out.write(render_table(["name", "state", "status", "image", "ports"], rows) + "\n")
    return int(ExitCode.OK)


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    runs: dict[str, Callable[..., Any]] = {
        "deploy": api.deploy,
        "check": api.check,
        "rolling-restart": api.rolling_restart,
        "validate": api.validate,
    }
    try:
        if args.command in runs:
            return _run_action(args, runs[args.command], out, err)
        if args.command == "plan":
            return _plan(args, out, err)
        if args.command == "cache" and args.cache_command == "evict":
            return _cache_evict(args, out, err)
        if args.command == "cache":
            return _cache_purge(args, out, err)
        if args.command == "audit":
            if args.audit_command == "prune":
                return _audit_prune(args, out, err)
            return _audit_verify(args, out, err)
        if args.command == "erase":
            return _erase(args, out, err)
        if args.lab_command == "status":
            return _lab_status(args, out)
        action = lab.lab_up if args.lab_command == "up" else lab.lab_down
        return _run_action(args, action, out, err)
    except PlacementInputError as error:
        err.write(f"{PROG} {args.command}: {_flag(error.field)}: {str(error).split(': ', 1)[1]}\n")
        return int(ExitCode.USAGE)
    except (UsageError, SecretError) as error:
        command = f"cache {args.cache_command}" if args.command == "cache" else args.command
        err.write(f"{PROG} {command}: {error}\n")
        return int(ExitCode.USAGE)
    except lab.LabError as error:
        err.write(f"{PROG} lab: {error}\n")
        return int(ExitCode.ERROR)
    except AnsibleRunnerException as error:
        err.write(f"{PROG} {args.command}: ansible-runner failed: {error}\n")
        return int(ExitCode.ERROR)
    except KeyboardInterrupt:
        err.write(f"{PROG}: canceled\n")
        return int(ExitCode.CANCELED)
