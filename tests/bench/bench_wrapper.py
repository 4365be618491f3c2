"""Time the onprem-llm wrapper against plain ansible-playbook on the same small playbook.

A script, not a test: `python tests/bench/bench_wrapper.py [--runs N]`. It builds a throwaway
project (the wrapper tests' site.yml on two local hosts), then alternates the contenders so a
busy machine slows them alike:

  ansible-playbook   ansible-playbook -i inventory site.yml
  onprem-llm CLI     onprem-llm deploy ... --progress none (new process: imports + runner)
  API in process     onprem_llm.deploy(...) called from this Python (runner only)

Reports wall-clock and CPU seconds (this process and its children); on a shared machine the
CPU figures are the steadier measure of what the wrapper adds.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from onprem_llm import RunOptions, deploy

PLAYBOOK = Path(__file__).resolve().parents[1] / "unit" / "package" / "playbooks" / "site.yml"
BIN = Path(sys.executable).parent


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copy(PLAYBOOK, root / "site.yml")
    hosts = "\n".join(
        f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}"
        for host in ("node1", "node2")
    )
    (root / "inventory").write_text(hosts + "\n")
    return root


def _cpu() -> float:
    # This process and its finished children: the CPU a run costs, whatever else is running.
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run."""
    wall, cpu = time.perf_counter(), _cpu()
    action()
    return time.perf_counter() - wall, _cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="onprem-llm-bench-") as scratch:
        project = make_project(Path(scratch) / "project")
        artifacts = Path(scratch) / "artifacts"
        inventory = str(project / "inventory")

        def plain() -> None:
            command = [str(BIN / "ansible-playbook"), "-i", inventory, str(project / "site.yml")]
            subprocess.run(command, check=True, capture_output=True)

        def cli() -> None:
            command = [str(BIN / "onprem-llm"), "deploy", "-i", inventory, "--project-dir"]
            command += [str(project), "--artifact-dir", str(artifacts), "--progress", "none"]
            subprocess.run(command, check=True, capture_output=True)

        def in_process() -> None:
            options = RunOptions(inventory=(inventory,), artifact_root=artifacts)
            if not deploy(project, options).ok:
                raise RuntimeError("the benchmark playbook failed")

        contenders = {
            "ansible-playbook": plain,
            "onprem-llm CLI": cli,
            "API in process": in_process,
        }
        for action in contenders.values():  # warm the page cache and bytecode
            action()
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for _unused in range(args.runs):
            for name, action in contenders.items():
                seconds, cpu_seconds = timed(action)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)

    base_wall = statistics.median(wall["ansible-playbook"])
    base_cpu = statistics.median(cpu["ansible-playbook"])
    print(f"{args.runs} runs each, alternating; seconds (medians; wall min-max in brackets)")
    print(f"{'contender':<18} {'wall':>7} {'overhead':>9} {'cpu':>7} {'overhead':>9}  wall range")
    for name in contenders:
        median_wall, median_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        extra_wall = "" if name == "ansible-playbook" else f"{median_wall - base_wall:+.3f}"
        extra_cpu = "" if name == "ansible-playbook" else f"{median_cpu - base_cpu:+.3f}"
        print(
            f"{name:<18} {median_wall:7.3f} {extra_wall:>9} {median_cpu:7.3f} {extra_cpu:>9}"
            f"  [{min(wall[name]):.3f}-{max(wall[name]):.3f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
