"""Time a playbook with the onprem.llm.audit_log callback off and on.

A script, not a test: `python tests/bench/bench_audit.py [--tasks N] [--hosts H] [--runs R]`.
It writes a playbook of N quick tasks (debug and set_fact, alternating) on H local hosts and
runs it with the callback off and on (HMAC key and syslog on, as a signed deployment runs),
alternating so a busy machine slows both alike. Prints medians of wall-clock and CPU seconds
(ansible-playbook and its workers) and the difference in percent; the goal is 5% or less.

On a busy machine whole runs vary more than the callback costs, so each run also reports the
seconds spent inside the callback's methods (ansible-playbook is started through a few lines
that time them), which is the callback's share of the run whatever else the machine does.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# ansible-playbook, with the audit callback's methods timed when it is loaded.
TIMED_ANSIBLE_PLAYBOOK = r"""
import atexit, functools, sys, time
from ansible.plugins.loader import callback_loader

spent = [0.0, 0.0]  # wall, CPU

def timed(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - wall
            spent[1] += time.thread_time() - cpu
    return wrapper

load = callback_loader.get

def get(name, *args, **kwargs):
    plugin = load(name, *args, **kwargs)
    if name == "onprem.llm.audit_log" and plugin is not None and "_timed" not in vars(plugin):
        for attr in [a for a in vars(plugin) if a.startswith("v2_") or a == "set_options"]:
            setattr(plugin, attr, timed(vars(plugin)[attr]))
        plugin._timed = True
    return plugin

callback_loader.get = get
atexit.register(lambda: print("audit callback seconds: %.6f %.6f" % tuple(spent), file=sys.stderr))
from ansible.cli.playbook import main
sys.argv[0] = "ansible-playbook"
main()
"""


def write_project(root: Path, tasks: int, hosts: int) -> None:
    inventory = "".join(
        f"host{n} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        for n in range(hosts)
    )
    (root / "hosts").write_text(inventory)
    lines = ["- name: Benchmark the audit trail", "  hosts: all", "  gather_facts: false"]
    lines.append("  tasks:")
    for n in range(tasks):
        if n % 2:
            lines += [f"    - name: Set fact {n}", "      ansible.builtin.set_fact:"]
            lines.append(f"        bench_fact_{n}: {n}")
        else:
            lines += [f"    - name: Debug {n}", "      ansible.builtin.debug:"]
            lines.append(f'        msg: "task {n} on {{{{ inventory_hostname }}}}"')
    (root / "play.yml").write_text("\n".join(lines) + "\n")
    (root / "audit.key").write_text("bench-key-" + "0" * 40 + "\n")


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


Timings = tuple[float, float, float, float]


def run(root: Path, audit: bool, syslog: bool, fsync: bool) -> Timings:
    """Wall-clock and CPU seconds of one run, then of its time inside the callback."""
    skip = ("ONPREM_LLM_AUDIT", "ANSIBLE_CALLBACKS_ENABLED")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    if audit:  # an empty list is an error to ansible-playbook: off means unset
        env["ANSIBLE_CALLBACKS_ENABLED"] = "onprem.llm.audit_log"
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / "collections"),
        ANSIBLE_FORKS="5",
        ONPREM_LLM_AUDIT_LOG=str(root / "audit.jsonl"),
        ONPREM_LLM_AUDIT_KEY_FILE=str(root / "audit.key"),
        ONPREM_LLM_AUDIT_SYSLOG=str(syslog).lower(),
        ONPREM_LLM_AUDIT_FSYNC=str(fsync).lower(),
    )
    command = [sys.executable, "-c", TIMED_ANSIBLE_PLAYBOOK, "-i", "hosts", "play.yml"]
    wall, cpu = time.perf_counter(), _cpu_of_children()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - wall, _cpu_of_children() - cpu
    if done.returncode != 0:
        raise SystemExit(f"the benchmark playbook failed:\n{done.stdout}{done.stderr}")
    spent = re.search(r"audit callback seconds: ([0-9.]+) ([0-9.]+)", done.stderr)
    if spent is None:
        return wall, cpu, 0.0, 0.0
    return wall, cpu, float(spent.group(1)), float(spent.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-syslog", action="store_true", help="leave syslog out")
    parser.add_argument("--fsync", action="store_true", help="sync after each record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="onprem-llm-bench-audit-") as scratch:
        root = Path(scratch)
        write_project(root, args.tasks, args.hosts)
        results: dict[str, list[Timings]] = {"off": [], "on": []}
        for _unused in range(args.runs):
            for name in results:
                results[name].append(run(root, name == "on", not args.no_syslog, args.fsync))
        records = len((root / "audit.jsonl").read_text().splitlines()) // args.runs

    print(
        f"{args.tasks} tasks x {args.hosts} hosts, {args.runs} runs each (alternating);"
        f" {records} audit records per run"
    )
    print(
        f"{'callback':<9} {'wall s':>8} {'cpu s':>8} {'in callback':>12} {'(cpu)':>6}  wall range"
    )
    medians = {}
    for name, runs in results.items():
        wall, cpu, spent, spent_cpu = (statistics.median(c) for c in zip(*runs, strict=True))
        medians[name] = wall, cpu
        walls = [timings[0] for timings in runs]
        print(
            f"{name:<9} {wall:8.2f} {cpu:8.2f} {spent:12.3f} {spent_cpu:6.3f}"
            f"  [{min(walls):.2f}-{max(walls):.2f}]"
        )
    (off_wall, off_cpu), (on_wall, on_cpu) = medians["off"], medians["on"]
    print(
        f"difference of medians: wall {100 * (on_wall - off_wall) / off_wall:+.1f}%,"
        f" cpu {100 * (on_cpu - off_cpu) / off_cpu:+.1f}%"
    )
    on = results["on"]
    share = statistics.median(spent / wall for wall, _unused, spent, _unused in on)
    per_record = statistics.median(spent for _unused, _unused, spent, _unused in on) / records
    per_record_cpu = statistics.median(spent_cpu for *_unused, spent_cpu in on) / records
    print(
        f"time inside the callback: {100 * share:.1f}% of an audited run's wall-clock;"
        f" {1e6 * per_record:.0f} us a record ({1e6 * per_record_cpu:.0f} us of CPU)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
