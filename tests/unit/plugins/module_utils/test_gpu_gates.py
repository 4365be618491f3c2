"""gpu_validate's acceptance gates on nvidia-smi hosts (fixtures/nvidia_smi, generated)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.gpu_gates import FilterModule
from ansible_collections.onprem.llm.plugins.module_utils._gpu_gates import (
    GATES,
    GateInputError,
    gpu_gates,
    parse_imex_nodes,
    parse_nccl_bus_bandwidth,
)
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    SmiRun,
    build_facts,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
# The real nvidia-imex-ctl -N layout (node table, then the domain state).
IMEX_UP = """Connectivity Table Legend:
I - Invalid - Node wasn't reachable, no connection status available
N - Never Connected
R - Recovering - Connection was lost, but clean up has not yet been triggered.
D - Disconnected - Connection was lost, and clean up has been triggreed.
A - Authenticating - If GSSAPI enabled, client has initiated mutual authentication.
!V! - Version mismatch, communication disabled.
!M! - Node map mismatch, communication disabled.
C - Connected - Ready for operation

11/28/2026 03:20:11.000
Nodes:
Node #0   - 10.20.2.101     - READY                - Version: 580.126.09
Node #1   - 10.20.2.102     - READY                - Version: 580.126.09

 Nodes From\\To  0   1
       0        C   C
       1        C   C
Domain State: UP
"""
NCCL_OK = """#  Rank  0 Group  0 Pid  41 on gpu-h200 device  0 [0x1b] NVIDIA H200
#       size         count      type   redop    root     time   algbw   busbw #wrong
  8589934592    2147483648     float     sum      -1    41231  208.34  364.59      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 364.592
"""
DIAG_PASS = """Successfully ran diagnostic for group.
+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
| Deployment                | Pass                                           |
| Memory                    | Pass                                           |
+---------------------------+------------------------------------------------+
| Overall Result            | Pass                                           |
"""
DIAG_FAIL = DIAG_PASS.replace(
    "| Memory                    | Pass  ", "| Memory                    | Fail  "
)


def facts(
    host: str, smi_xml: str | None = None, rc: int = 0, loaded: bool = True
) -> dict[str, Any]:
    root = FIXTURES / "hosts" / host
    version = root / "proc/driver/nvidia/version"
    switches = root / "proc/driver/nvidia-nvswitch/devices"
    stdout = (FIXTURES / f"{host}.xml").read_text() if smi_xml is None else smi_xml
    return build_facts(
        HostReadings(
            smi=SmiRun("/usr/bin/nvidia-smi", rc, stdout, ""),
            proc_version=version.read_text() if loaded and version.exists() else None,
            nvswitch_devices=sorted(os.listdir(switches)) if switches.exists() else [],
            ib_vpds=[
                p.read_bytes() for p in sorted(root.glob("sys/class/infiniband/*/device/vpd"))
            ],
        )
    )


def container(count: int, engine: str = "podman", uuids: list[str] | None = None) -> dict[str, Any]:
    """A CDI test container's `nvidia-smi -L`, listing `count` GPUs."""
    uuids = uuids or [f"GPU-{i:08x}-0000-0000-0000-000000000000" for i in range(count)]
    lines = [f"GPU {i}: NVIDIA H200 (UUID: {uuid})" for i, uuid in enumerate(uuids[:count])]
    return {"engine": engine, "rc": 0, "stdout": "\n".join(lines), "stderr": ""}


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {name: gate["status"] for name, gate in report["gates"].items()}


def test_healthy_h200_passes_every_applicable_gate() -> None:
    report = gpu_gates(
        facts("h200_hgx"),
        "h200_hgx",
        host="gpu-h200",
        expected_gpu_count=8,
        expected_model="H200",
        expected_driver_version="570.133.20",
        container=container(8),
        dcgm_diag={"level": 2, "rc": 0, "stdout": DIAG_PASS, "stderr": ""},
        nccl={"rc": 0, "stdout": NCCL_OK, "stderr": "", "threshold_gbps": 300},
    )
    assert report["passed"] is True
    assert report["failures"] == []
    assert list(report["gates"]) == list(GATES)
    assert statuses(report) == {
        **dict.fromkeys(GATES, "passed"),
        "imex": "skipped",
        "page_retirement": "skipped",  # Hopper remaps rows instead
        "recovery_action": "skipped",  # the generated r570 layout has no gpu_recovery_action
    }
    assert report["gates"]["fabric"]["reason"] == "fabric state Completed and healthy on all 8 GPUs"
    assert (
        report["gates"]["imex"]["reason"] == "h200_hgx: IMEX runs only on GB200 NVL72 compute trays"
    )
    assert report["summary"] == "11 passed, 0 failed, 3 skipped"
    assert report["driver"] == {
        "kernel_module": "570.133.20",
        "userspace": "570.133.20",
        "cuda": "12.8",
    }
    assert [g["index"] for g in report["gpus"]] == list(range(8))


def test_optional_checks_are_skipped_with_why_when_off() -> None:
    report = gpu_gates(facts("h200_hgx"), "h200_hgx", expected_gpu_count=8, expected_model="H200",
                       container=container(8))  # fmt: skip
    assert report["passed"] is True
    assert report["gates"]["dcgm_diag"] == {
        "status": "skipped",
        "reason": "disabled (gpu_validate_dcgm_diag)",
    }
    assert report["gates"]["nccl_bandwidth"]["reason"] == "disabled (gpu_validate_nccl_tests)"


def test_ecc_errors_fail_with_the_gpu_and_count_and_every_gate_still_runs() -> None:
    report = gpu_gates(facts("h200_hgx_ecc_errors"), "h200_hgx", expected_gpu_count=8,
                       expected_model="H200", container=container(8))  # fmt: skip
    assert report["passed"] is False
    assert report["gates"]["ecc"]["status"] == "failed"
    assert (
        "GPU 5 (00000000:C3:00.0) has 3 volatile uncorrected (DBE) ECC errors"
        in (report["gates"]["ecc"]["reason"])
    )
    assert report["gates"]["row_remapping"]["status"] == "failed"
    assert (
        "GPU 5 (00000000:C3:00.0) has a row remap pending"
        in report["gates"]["row_remapping"]["reason"]
    )
    # The other gates were evaluated too, not stopped at the first failure.
    assert report["gates"]["fabric"]["status"] == "passed"
    assert report["gates"]["gpu_count"]["status"] == "passed"
    assert [f.split(":")[0] for f in report["failures"]] == ["ecc", "row_remapping"]


def test_gb200_tray_checks_imex_and_skips_host_fabric() -> None:
    report = gpu_gates(
        facts("gb200_tray"),
        "gb200_nvl72",
        expected_gpu_count=4,
        expected_model="GB200",
        imex={
            "service": "active",
            "output": IMEX_UP,
            "expected_nodes": ["10.20.2.101", "10.20.2.102"],
        },
        container=container(4),
    )
    assert report["passed"] is True, report["failures"]
    assert report["gates"]["imex"] == {
        "status": "passed",
        "reason": "IMEX domain UP with 2 READY nodes",
    }
    # The rack's switch trays run the fabric, but each tray's GPUs must still read Completed.
    assert report["gates"]["fabric"] == {
        "status": "passed",
        "reason": "fabric state Completed and healthy on all 4 GPUs",
    }


def test_gb200_imex_down_or_missing_node_fails() -> None:
    down = IMEX_UP.replace("Domain State: UP", "Domain State: DEGRADED").replace(
        "10.20.2.102     - READY", "10.20.2.102     - UNAVAILABLE"
    )
    rack = ["10.20.2.101", "10.20.2.102", "10.20.2.103"]
    imex = {"service": "failed", "output": down, "expected_nodes": rack}
    report = gpu_gates(facts("gb200_tray"), "gb200_nvl72", imex=imex)
    reason = report["gates"]["imex"]["reason"]
    assert report["gates"]["imex"]["status"] == "failed"
    assert "service nvidia-imex is failed" in reason
    assert "IMEX domain state is DEGRADED" in reason
    assert "IMEX node 10.20.2.102 is not READY" in reason
    assert "node 10.20.2.103 of the rack is missing from the IMEX domain" in reason


def test_stand_in_imex_ctl_layout_parses() -> None:
    state, nodes = parse_imex_nodes(
        "Domain State: UP\nNode 10.0.0.1: READY\nNode 10.0.0.2: READY\n"
    )
    assert (state, nodes) == ("UP", {"10.0.0.1": True, "10.0.0.2": True})
    assert parse_imex_nodes("") == (None, {})


def test_no_driver_fails_with_readable_reasons_not_a_traceback() -> None:
    report = gpu_gates(facts("h200_hgx", smi_xml=NO_DRIVER, rc=9, loaded=False), "h200_hgx",
                       expected_gpu_count=8, expected_model="H200")  # fmt: skip
    assert report["passed"] is False
    assert report["gates"]["driver_versions"]["reason"] == "the NVIDIA kernel module is not loaded"
    assert report["gates"]["gpu_count"]["reason"].startswith(
        "0 GPUs visible, h200_hgx expects 8; no GPUs visible:"
    )
    assert (
        "couldn't communicate with the NVIDIA driver"
        in report["gates"]["persistence_mode"]["reason"]
    )
    assert report["gates"]["container_cdi"]["status"] == "skipped"
    assert report["gpu_count"] == 0


def test_module_userspace_mismatch_fails_the_driver_gate() -> None:
    stale = facts("h200_hgx")
    stale.update(kernel_module_version="580.95.05", driver_versions_match=False)
    report = gpu_gates(stale, "h200_hgx", expected_gpu_count=8, expected_model="H200")
    assert report["gates"]["driver_versions"] == {
        "status": "failed",
        "reason": "loaded kernel module 580.95.05 differs from userspace driver 570.133.20: "
        "reboot to finish the driver change",
    }


def test_driver_other_than_the_inventory_version_fails() -> None:
    report = gpu_gates(facts("h200_hgx"), "h200_hgx", expected_driver_version="580.126.09")
    assert report["gates"]["driver_versions"]["reason"] == (
        "driver 570.133.20 is running but nvidia_driver_version is 580.126.09"
    )


def test_wrong_count_and_model_for_the_profile_fail() -> None:
    # An H100 board in an h200_hgx group; a GB200 name must not pass as B200.
    report = gpu_gates(facts("h100_hgx"), "h200_hgx", expected_gpu_count=8, expected_model="H200")
    assert report["gates"]["gpu_model"]["status"] == "failed"
    assert "GPU 0 (" in report["gates"]["gpu_model"]["reason"]
    assert "is NVIDIA H100 80GB HBM3" in report["gates"]["gpu_model"]["reason"]
    gb200 = gpu_gates(facts("gb200_tray"), "b200_hgx", expected_gpu_count=8, expected_model="B200")
    assert gb200["gates"]["gpu_model"]["status"] == "failed"
    assert gb200["gates"]["gpu_count"]["reason"] == "4 GPUs visible, b200_hgx expects 8"


def test_persistence_off_fails(tmp_path: Path) -> None:
    xml = (FIXTURES / "h200_hgx.xml").read_text()
    off = xml.replace(
        "<persistence_mode>Enabled</persistence_mode>",
        "<persistence_mode>Disabled</persistence_mode>",
        1,
    )
    report = gpu_gates(facts("h200_hgx", smi_xml=off), "h200_hgx")
    assert (
        report["gates"]["persistence_mode"]["reason"]
        == "persistence mode is off on GPU 0 (00000000:1B:00.0)"
    )


def test_fabric_in_progress_fails_on_hgx() -> None:
    xml = (
        (FIXTURES / "h200_hgx.xml")
        .read_text()
        .replace("<state>Completed</state>", "<state>In Progress</state>", 1)
    )
    report = gpu_gates(facts("h200_hgx", smi_xml=xml), "h200_hgx")
    assert report["gates"]["fabric"]["status"] == "failed"
    assert "GPU 0 (00000000:1B:00.0) is In Progress" in report["gates"]["fabric"]["reason"]
    assert "nvidia-fabricmanager" in report["gates"]["fabric"]["reason"]


def test_generic_single_gpu_skips_what_it_cannot_know() -> None:
    report = gpu_gates(facts("h100_pcie_mig"), "generic", container=container(1))
    assert report["passed"] is True, report["failures"]
    assert statuses(report)["gpu_count"] == "skipped"
    assert report["gates"]["gpu_count"]["reason"] == "no expected GPU count for profile generic"
    assert (
        report["gates"]["fabric"]["reason"] == "generic: no NVSwitch or NVLink fabric on this host"
    )


def test_old_gpu_without_row_remapper_skips_that_gate() -> None:
    report = gpu_gates(facts("t4_r450"), "generic")
    assert report["gates"]["row_remapping"] == {
        "status": "skipped",
        "reason": "these GPUs have no row remapper (pre-Ampere)",
    }


def test_container_seeing_fewer_gpus_or_failing_fails() -> None:
    host_uuids = [gpu["uuid"] for gpu in facts("h200_hgx")["gpus"]]
    few = gpu_gates(facts("h200_hgx"), "h200_hgx", container=container(6, uuids=host_uuids))
    assert few["gates"]["container_cdi"]["reason"] == (
        "nvidia-smi -L in a podman container given nvidia.com/gpu=all lists 6 GPUs, "
        "the host has 8 (missing GPU 6, 7)"
    )
    # The host's GPUs the container does not list are named.
    named = gpu_gates(
        facts("h200_hgx"), "h200_hgx", container=container(7, uuids=host_uuids[:3] + host_uuids[4:])
    )
    assert named["gates"]["container_cdi"]["reason"].endswith("the host has 8 (missing GPU 3)")
    # Device nodes alone (a container without nvidia-smi) are not GPUs nvidia-smi can use.
    nodes = {"engine": "podman", "rc": 0, "stdout": "nvidia0\nnvidia1\nnvidiactl", "stderr": ""}
    assert gpu_gates(facts("h200_hgx"), "h200_hgx", container=nodes)["passed"] is False
    error = "Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all"
    run = {"engine": "podman", "rc": 125, "stdout": "", "stderr": error}
    broken = gpu_gates(facts("h200_hgx"), "h200_hgx", container=run)
    assert broken["gates"]["container_cdi"]["reason"] == (
        "podman could not run the CDI test container (rc 125): "
        "Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all"
    )
    unsupported = gpu_gates(
        facts("h200_hgx"), "h200_hgx", container={"skip_reason": "docker 20.10 has no CDI"}
    )
    assert unsupported["gates"]["container_cdi"] == {
        "status": "skipped",
        "reason": "docker 20.10 has no CDI",
    }


def test_dcgm_diag_failure_lists_the_failed_test() -> None:
    report = gpu_gates(
        facts("h200_hgx"),
        "h200_hgx",
        dcgm_diag={"level": 2, "rc": 226, "stdout": DIAG_FAIL, "stderr": ""},
    )
    assert report["gates"]["dcgm_diag"]["status"] == "failed"
    assert "Memory Fail" in report["gates"]["dcgm_diag"]["reason"]


def test_nccl_bandwidth_below_threshold_or_missing_fails() -> None:
    assert parse_nccl_bus_bandwidth(NCCL_OK) == pytest.approx(364.592)
    low = gpu_gates(
        facts("h200_hgx"), "h200_hgx", nccl={"rc": 0, "stdout": NCCL_OK, "threshold_gbps": 400}
    )
    assert low["gates"]["nccl_bandwidth"]["reason"] == (
        "all_reduce_perf average bus bandwidth 364.592 GB/s is below 400 GB/s"
    )
    empty = gpu_gates(
        facts("h200_hgx"), "h200_hgx", nccl={"rc": 0, "stdout": "", "threshold_gbps": 1}
    )
    assert (
        empty["gates"]["nccl_bandwidth"]["reason"]
        == "all_reduce_perf printed no 'Avg bus bandwidth'"
    )
    corrupt = NCCL_OK.replace("values : 0 OK", "values : 3 FAILED")
    bad = gpu_gates(
        facts("h200_hgx"), "h200_hgx", nccl={"rc": 0, "stdout": corrupt, "threshold_gbps": 1}
    )
    assert "3 out-of-bounds values" in bad["gates"]["nccl_bandwidth"]["reason"]


def test_user_skip_list_is_recorded_and_unknown_names_rejected() -> None:
    report = gpu_gates(facts("h200_hgx_ecc_errors"), "h200_hgx", skip=["ecc", "row_remapping"])
    assert report["gates"]["ecc"] == {
        "status": "skipped",
        "reason": "skipped by gpu_validate_skip_gates",
    }
    assert report["passed"] is True
    with pytest.raises(GateInputError, match=r"gpu_validate_skip_gates: unknown gate.*ecc_check"):
        gpu_gates(facts("h200_hgx"), "h200_hgx", skip=["ecc_check"])


def test_filters_wrap_the_functions_and_raise_filter_errors() -> None:
    filters = FilterModule().filters()
    report = filters["gpu_gates"](facts("gb200_tray"), "", expected_gpu_count=4)
    assert report["profile"] == "gb200_nvl72"
    with pytest.raises(AnsibleFilterError, match="gpu_validate_skip_gates"):
        filters["gpu_gates"](facts("h200_hgx"), "h200_hgx", skip=["nope"])
