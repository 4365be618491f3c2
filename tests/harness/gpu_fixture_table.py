"""Print, for every nvidia-smi fixture (recorded and generated), the profile the parser detects
and the gates' verdict with the role's expectations for that profile, as a Markdown table.

  PYTHONPATH=collections python tests/harness/gpu_fixture_table.py

The kernel module is taken to match the capture's driver; IMEX, CDI, DCGM and NCCL are not
observed (those gates skip, or fail on GB200 where IMEX is required).
"""

from __future__ import annotations

from pathlib import Path

from ansible_collections.onprem.llm.plugins.module_utils import _gpu_gates, _hardware, _nvidia_smi

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "nvidia_smi"
PROC = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {}  Release Build  (fixture)\n"


def row(path: Path) -> str:
    data = path.read_bytes()
    try:
        driver = _nvidia_smi.parse_nvidia_smi_xml(data)["driver_version"]
    except _nvidia_smi.NvidiaSmiError:
        driver = None
    run = _nvidia_smi.SmiRun(path="/usr/bin/nvidia-smi", rc=0, stdout=data)
    readings = _nvidia_smi.HostReadings(
        smi=run, proc_version=PROC.format(driver) if driver else None
    )
    facts = _nvidia_smi.build_facts(readings)
    profile = facts["hardware_profile"]
    expected = _hardware.validation_expectations().get(profile, {})
    report = _gpu_gates.gpu_gates(
        facts,
        profile,
        expected_gpu_count=expected.get("gpu_count"),
        expected_model=expected.get("model"),
    )
    gpus = facts.get("gpus") or []
    name = gpus[0].get("name") if gpus else "-"
    failed = [gate for gate, result in report["gates"].items() if result["status"] == "failed"]
    cells = [
        str(path.relative_to(FIXTURES)),
        f"{len(gpus)}x {name}",
        driver or "-",
        f"{profile} ({facts.get('profile_source')})",
        report["summary"],
        ", ".join(failed) or "-",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print("| capture | GPUs | driver | profile (from) | gates | failed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sorted(FIXTURES.glob("real/*.xml")) + sorted(FIXTURES.glob("*.xml")):
        print(row(path))


if __name__ == "__main__":
    main()
