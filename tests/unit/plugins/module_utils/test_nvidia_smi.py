"""Facts from nvidia-smi output and host trees (fixtures/nvidia_smi; real/ in test_gpu_health)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    NvidiaSmiError,
    SmiRun,
    build_facts,
    detect_profile,
    hardware_profile,
    overall_fabric_state,
    parse_kernel_module,
    parse_nvidia_smi_xml,
    reported,
    to_enabled,
    to_float,
    to_int,
    to_yes_no,
    vpd_has_sw_mng,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
SMI = "/usr/bin/nvidia-smi"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
ZERO_ECC = {
    "volatile": {"corrected": 0, "uncorrected": 0},
    "aggregate": {"corrected": 0, "uncorrected": 0},
}


def xml(name: str) -> str:
    return (FIXTURES / f"{name}.xml").read_text()


def host_readings(host: str, smi_xml: str | None = None, rc: int = 0) -> HostReadings:
    """Readings of a fixture host tree, as the module would gather them."""
    root = FIXTURES / "hosts" / host
    version = root / "proc/driver/nvidia/version"
    switches = root / "proc/driver/nvidia-nvswitch/devices"
    return HostReadings(
        smi=SmiRun(SMI, rc, xml(host) if smi_xml is None else smi_xml, ""),
        proc_version=version.read_text() if version.exists() else None,
        nvswitch_devices=sorted(os.listdir(switches)) if switches.exists() else [],
        ib_vpds=[p.read_bytes() for p in sorted(root.glob("sys/class/infiniband/*/device/vpd"))],
    )


def facts(host: str, **kwargs: Any) -> dict[str, Any]:
    return build_facts(host_readings(host, **kwargs))


# name, gpus, driver, flavor, arch, cuda, profile, nvswitch, nvlink5, fabric, model, MiB, limit W
HOSTS = [
    ("h100_hgx", 8, "560.35.03", "open", "x86_64", "12.6", "h100_hgx", 4, False, "Completed",
     "NVIDIA H100 80GB HBM3", 81559, 700.0),
    ("h200_hgx", 8, "570.133.20", "open", "x86_64", "12.8", "h200_hgx", 4, False, "Completed",
     "NVIDIA H200", 143771, 700.0),
    ("b200_hgx", 8, "570.158.01", "open", "x86_64", "12.9", "b200_hgx", 0, True, "Completed",
     "NVIDIA B200", 183359, 1000.0),
    ("gb200_tray", 4, "580.126.09", "open", "aarch64", "13.0", "gb200_nvl72", 0, False,
     "Completed", "NVIDIA GB200", 189471, 1200.0),
    ("l40s_single", 1, "535.216.01", "proprietary", "x86_64", "12.2", "generic", 0, False, "N/A",
     "NVIDIA L40S", 46068, 350.0),
    ("h100_pcie_mig", 1, "570.133.20", "open", "x86_64", "12.8", "generic", 0, False, "N/A",
     "NVIDIA H100 PCIe", 81559, 350.0),
    ("t4_r450", 2, "450.248.02", "proprietary", "x86_64", "11.0", "generic", 0, False, "N/A",
     "Tesla T4", 15109, 70.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "count", "driver", "flavor", "arch", "cuda", "profile", "switches", "nvlink5",
     "fabric", "model", "memory", "limit"),
    HOSTS,
)  # fmt: skip
def test_host_facts(
    host: str,
    count: int,
    driver: str,
    flavor: str,
    arch: str,
    cuda: str,
    profile: str,
    switches: int,
    nvlink5: bool,
    fabric: str,
    model: str,
    memory: int,
    limit: float,
) -> None:
    result = facts(host)
    assert result["problems"] == []
    assert result["driver_loaded"] is True
    assert result["gpu_count"] == count == len(result["gpus"])
    assert result["userspace_driver_version"] == result["kernel_module_version"] == driver
    assert result["driver_versions_match"] is True
    assert (result["kernel_module_flavor"], result["kernel_module_arch"]) == (flavor, arch)
    assert result["cuda_version"] == cuda
    assert result["hardware_profile"] == profile
    assert (result["nvswitch_count"], result["nvswitch_present"]) == (switches, switches > 0)
    assert result["nvlink5_present"] is nvlink5
    assert result["fabric_state"] == fabric
    assert {gpu["name"] for gpu in result["gpus"]} == {model}
    assert {gpu["memory_total_mib"] for gpu in result["gpus"]} == {memory}
    assert {gpu["power_limit_w"] for gpu in result["gpus"]} == {limit}
    assert [gpu["index"] for gpu in result["gpus"]] == list(range(count))
    assert len({gpu["uuid"] for gpu in result["gpus"]}) == count


def test_h100_hgx_first_gpu_in_full() -> None:
    assert facts("h100_hgx")["gpus"][0] == {
        "index": 0,
        "readable": True,
        "read_error": None,
        "minor_number": 0,
        "uuid": "GPU-16e59c5a-9be3-561d-1a31-0b0b9bb55eef",
        "name": "NVIDIA H100 80GB HBM3",
        "architecture": "Hopper",
        "pci_bus_id": "00000000:18:00.0",
        "pci_device_id": "0x2330",
        "pci_vendor_id": "0x10DE",
        "part": "H100 SXM5 80GB",
        "memory_total_mib": 81559,
        "persistence_mode": True,
        "ecc_mode": True,
        "ecc_errors": ZERO_ECC,
        "memory_health": {
            "sram_threshold_exceeded": False,
            "unrepairable": None,
            "unrepairable_reason": None,
            "channel_repair_pending": None,
            "tpc_repair_pending": None,
        },
        "retired_pages": {"single_bit": None, "double_bit": None, "pending": None},
        "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
        "recovery_action": None,
        "mig_mode": False,
        "mig_mode_pending": False,
        "mig_device_count": 0,
        "temperature_c": 31,
        "power_draw_w": 71.5,
        "power_limit_w": 700.0,
        "fabric_state": "Completed",
        "fabric_status": "Success",
        "fabric_health": {
            "summary": None,
            "bandwidth": None,
            "route_unhealthy": None,
            "route_recovery_in_progress": None,
            "access_timeout_recovery": None,
            "incorrect_configuration": None,
        },
    }


def test_hgx_bus_ids_in_nvidia_smi_order() -> None:
    buses = [gpu["pci_bus_id"] for gpu in facts("h200_hgx")["gpus"]]
    assert buses == [
        f"00000000:{bus}:00.0" for bus in ("1B", "43", "52", "61", "9D", "C3", "D1", "DF")
    ]


def test_ecc_errors_sum_sram_and_dram_and_show_pending_remap() -> None:
    result = facts("h200_hgx_ecc_errors")
    sick = result["gpus"][5]
    # volatile: SRAM 4 + DRAM 7 corrected; SRAM SEC-DED 1 + DRAM 2 uncorrected
    assert sick["ecc_errors"] == {
        "volatile": {"corrected": 11, "uncorrected": 3},
        "aggregate": {"corrected": 43, "uncorrected": 3},
    }
    assert sick["remapped_rows"] == {
        "correctable": 0,
        "uncorrectable": 1,
        "pending": True,
        "failure": False,
    }
    assert sick["temperature_c"] == 44
    assert all(gpu["ecc_errors"] == ZERO_ECC for i, gpu in enumerate(result["gpus"]) if i != 5)
    # Health is for gates to judge; the board is still an HGX H200 with its fabric up.
    assert (result["hardware_profile"], result["fabric_state"]) == ("h200_hgx", "Completed")
    assert result["problems"] == []


def test_gb200_tray_reads_power_from_instant_draw_and_domain_bus_ids() -> None:
    gpus = facts("gb200_tray")["gpus"]
    assert [gpu["pci_bus_id"] for gpu in gpus] == [
        "00000008:01:00.0",
        "00000009:01:00.0",
        "00000018:01:00.0",
        "00000019:01:00.0",
    ]
    assert [gpu["power_draw_w"] for gpu in gpus] == [150.0, 157.0, 164.0, 171.0]
    assert {gpu["architecture"] for gpu in gpus} == {"Blackwell"}
    assert {gpu["fabric_status"] for gpu in gpus} == {"Success"}


def test_mig_enabled_gpu() -> None:
    (gpu,) = facts("h100_pcie_mig")["gpus"]
    assert (gpu["mig_mode"], gpu["mig_mode_pending"], gpu["mig_device_count"]) == (True, True, 2)
    assert (gpu["fabric_state"], gpu["fabric_status"]) == ("N/A", None)
    assert gpu["power_draw_w"] == 52.4


def test_l40s_single_gpu_uses_combined_sram_layout() -> None:
    (gpu,) = facts("l40s_single")["gpus"]
    assert gpu["persistence_mode"] is False
    assert gpu["mig_mode"] is None  # N/A on Ada
    assert gpu["ecc_errors"] == ZERO_ECC
    assert gpu["architecture"] == "Ada Lovelace"
    assert gpu["power_draw_w"] == 35.8


def test_r450_layout_single_double_bit_and_retired_pages() -> None:
    healthy, worn = facts("t4_r450")["gpus"]
    assert worn["ecc_errors"] == {
        "volatile": {"corrected": 3, "uncorrected": 1},
        "aggregate": {"corrected": 118, "uncorrected": 1},
    }
    assert worn["retired_pages"] == {"single_bit": 2, "double_bit": 1, "pending": False}
    assert healthy["retired_pages"] == {"single_bit": 0, "double_bit": 0, "pending": False}
    # No row remapper, no architecture element, no fabric block on this branch.
    assert worn["remapped_rows"] == dict.fromkeys(
        ("correctable", "uncorrectable", "pending", "failure")
    )
    assert (worn["architecture"], worn["mig_mode"], worn["fabric_state"]) == (None, None, "N/A")
    assert (worn["power_draw_w"], worn["power_limit_w"]) == (10.1, 70.0)
    assert worn["minor_number"] == 1


@pytest.mark.parametrize(
    ("fixture", "message"),
    [("empty", "printed nothing"), ("malformed", "not valid XML")],
)
def test_unreadable_output_is_a_problem_not_a_crash(fixture: str, message: str) -> None:
    result = facts("h100_hgx", smi_xml=xml(fixture))
    assert result["gpu_count"] == 0
    assert result["gpus"] == []
    assert result["driver_loaded"] is True  # the module is loaded; only the tool output is bad
    assert result["kernel_module_version"] == "560.35.03"
    assert result["userspace_driver_version"] is None
    assert result["driver_versions_match"] is None
    assert result["hardware_profile"] == "generic"
    assert result["fabric_state"] == "N/A"
    assert len(result["problems"]) == 1
    assert message in result["problems"][0]


def test_parse_errors_name_the_cause() -> None:
    with pytest.raises(NvidiaSmiError, match="starts with <html>"):
        parse_nvidia_smi_xml("<html><body>proxy error</body></html>")
    with pytest.raises(NvidiaSmiError, match="printed nothing"):
        parse_nvidia_smi_xml("  \n")


def test_loaded_module_differs_from_userspace_driver() -> None:
    readings = host_readings("h200_hgx")
    readings.proc_version = readings.proc_version.replace("570.133.20", "570.124.06")
    result = build_facts(readings)
    assert result["kernel_module_version"] == "570.124.06"
    assert result["userspace_driver_version"] == "570.133.20"
    assert result["driver_versions_match"] is False
    assert result["problems"] == [
        "loaded kernel module 570.124.06 differs from userspace driver 570.133.20: "
        "reboot (or reload the modules) to finish the upgrade"
    ]


def test_nvml_version_mismatch_after_upgrade_without_reboot() -> None:
    readings = host_readings(
        "h200_hgx",
        smi_xml="Failed to initialize NVML: Driver/library version mismatch\n"
        "NVML library version: 570.133\n",
        rc=18,
    )
    readings.proc_version = readings.proc_version.replace("570.133.20", "570.124.06")
    result = build_facts(readings)
    assert (result["driver_loaded"], result["gpu_count"]) == (True, 0)
    assert (result["kernel_module_version"], result["userspace_driver_version"]) == (
        "570.124.06",
        "570.133",
    )
    assert result["driver_versions_match"] is False
    assert result["problems"][0] == (
        f"{SMI} -q -x failed (rc 18): Failed to initialize NVML: Driver/library version mismatch"
    )
    assert "reboot" in result["problems"][1]


def test_no_driver_loaded() -> None:
    result = build_facts(HostReadings(smi=SmiRun(SMI, 9, NO_DRIVER, "")))
    assert result["driver_loaded"] is False
    assert result["gpu_count"] == 0
    assert result["kernel_module_version"] is None
    assert result["driver_versions_match"] is None
    assert result["hardware_profile"] == "generic"
    assert result["problems"] == [
        "NVIDIA kernel module not loaded: /proc/driver/nvidia/version is absent",
        f"{SMI} -q -x failed (rc 9): NVIDIA-SMI has failed because it couldn't communicate "
        "with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    ]


def test_no_userspace_driver() -> None:
    result = build_facts(HostReadings(smi=SmiRun(None)))
    assert result["driver_loaded"] is False
    assert "nvidia-smi not found" in result["problems"][1]


def test_driver_loaded_without_gpus() -> None:
    readings = host_readings("l40s_single", smi_xml="No devices were found\n", rc=6)
    result = build_facts(readings)
    assert (result["driver_loaded"], result["gpu_count"]) == (True, 0)
    assert result["problems"] == [f"{SMI} -q -x failed (rc 6): No devices were found"]


def test_attached_gpu_count_disagreeing_with_the_list() -> None:
    text = xml("h100_hgx").replace(
        "<attached_gpus>8</attached_gpus>", "<attached_gpus>9</attached_gpus>"
    )
    result = facts("h100_hgx", smi_xml=text)
    assert result["gpu_count"] == 8
    assert result["problems"] == ["nvidia-smi reports 9 attached GPUs but lists 8"]


def test_index_is_output_order_and_minor_number_is_separate() -> None:
    text = (
        "<nvidia_smi_log><driver_version>570.133.20</driver_version>"
        '<gpu id="00000000:1B:00.0"><minor_number>3</minor_number></gpu>'
        '<gpu id="00000000:43:00.0"><minor_number>1</minor_number></gpu>'
        "</nvidia_smi_log>"
    )
    gpus = parse_nvidia_smi_xml(text)["gpus"]
    assert [(gpu["index"], gpu["minor_number"], gpu["pci_bus_id"]) for gpu in gpus] == [
        (0, 3, "00000000:1B:00.0"),
        (1, 1, "00000000:43:00.0"),
    ]
    # Everything the trimmed blocks leave out reads as not reported.
    assert gpus[0]["uuid"] is None
    assert gpus[0]["ecc_errors"] == {
        "volatile": {"corrected": None, "uncorrected": None},
        "aggregate": {"corrected": None, "uncorrected": None},
    }
    assert gpus[0]["fabric_state"] == "N/A"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  "
         "(dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 23:29:13 UTC 2025\nGCC version:  gcc 12.3.0\n",
         {"version": "570.86.15", "flavor": "open", "arch": "x86_64"}),
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  "
         "Sun May 12 19:39:15 UTC 2024\n",
         {"version": "535.183.01", "flavor": "proprietary", "arch": "x86_64"}),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build  "
         "(dvs-builder@U22-I3-AF03-09-1)  Sun Jul 27 06:54:38 UTC 2025\n",
         {"version": "580.65.06", "flavor": "open", "arch": "aarch64"}),
        ("NVRM version: NVIDIA UNIX aarch64 Kernel Module  550.127.05  "
         "Tue Oct  8 03:21:41 UTC 2024\n",
         {"version": "550.127.05", "flavor": "proprietary", "arch": "aarch64"}),
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  177.80  Wed Oct  1 14:43:46 PDT 2008\n",
         {"version": "177.80", "flavor": "proprietary", "arch": "x86_64"}),
        ("nouveau 1.0\n", None),
        (None, None),
    ],
)  # fmt: skip
def test_parse_kernel_module(text: str | None, expected: dict[str, str] | None) -> None:
    assert parse_kernel_module(text) == expected


def test_unrecognised_proc_version_is_reported() -> None:
    readings = host_readings("h100_hgx")
    readings.proc_version = "garbled\n"
    result = build_facts(readings)
    assert result["driver_loaded"] is True
    assert result["kernel_module_version"] is None
    assert result["driver_versions_match"] is None
    assert result["problems"] == ["unrecognised /proc/driver/nvidia/version: 'garbled'"]


@pytest.mark.parametrize(
    "raw",
    [None, "", "N/A", "[N/A]", "Not Supported", "[Not Supported]", "[GPU requires reset]",
     "Requested functionality has been deprecated", "Unknown Error"],
)  # fmt: skip
def test_values_not_reported_become_none(raw: str | None) -> None:
    assert reported(raw) is None
    assert to_int(raw) is None
    assert to_float(raw) is None
    assert to_enabled(raw) is None
    assert to_yes_no(raw) is None


@pytest.mark.parametrize(
    ("raw", "integer", "number"),
    [("81559 MiB", 81559, 81559.0), ("41 C", 41, 41.0), ("71.53 W", 71, 71.53), ("-2 C", -2, -2.0),
     ("0", 0, 0.0), ("HMM", None, None)],
)  # fmt: skip
def test_numbers_with_units(raw: str, integer: int | None, number: float | None) -> None:
    assert (to_int(raw), to_float(raw)) == (integer, number)


def test_switches() -> None:
    assert (to_enabled("Enabled"), to_enabled("Disabled")) == (True, False)
    assert (to_yes_no("Yes"), to_yes_no("No")) == (True, False)
    assert to_enabled("Yes") is None


@pytest.mark.parametrize(
    ("states", "overall"),
    [
        ([], "N/A"),
        (["Completed"] * 8, "Completed"),
        (["Completed"] * 7 + ["In Progress"], "In Progress"),
        (["In Progress", "Not Started", "Completed"], "Not Started"),
        (["Not Supported"], "Not Supported"),
        (["N/A", "Not Supported"], "Not Supported"),
        (["N/A", "N/A"], "N/A"),
        (["Completed", "Not Supported"], "Completed"),
        (["Completed", "Degraded"], "Degraded"),
    ],
)
def test_overall_fabric_state(states: list[str], overall: str) -> None:
    assert overall_fabric_state(states) == overall


def _board(name: str, count: int, device: str | None = None) -> list[dict[str, Any]]:
    return [
        {"index": i, "name": name, "pci_device_id": device, "readable": True} for i in range(count)
    ]


@pytest.mark.parametrize(
    ("gpus", "profile", "source"),
    [
        (_board("NVIDIA H100 80GB HBM3", 8, "0x2330"), "h100_hgx", "pci_id"),
        (_board("NVIDIA H100 80GB HBM3", 7, "0x2330"), "h100_hgx", "pci_id"),  # one fell off
        (_board("NVIDIA H100 80GB HBM3", 8), "h100_hgx", "product_name"),  # no id: the name
        (_board("NVIDIA H100 PCIe", 2, "0x2331"), "generic", "pci_id"),
        (_board("NVIDIA H100 NVL", 2), "generic", "none"),
        (_board("NVIDIA H200", 8, "0x2335"), "h200_hgx", "pci_id"),
        (_board("NVIDIA Graphics Device", 8, "0x2335"), "h200_hgx", "pci_id"),  # unnamed part
        (_board("NVIDIA H200 NVL", 8, "0x233B"), "generic", "pci_id"),
        (_board("NVIDIA H200 NVL", 8), "generic", "none"),
        (_board("NVIDIA B200", 8, "0x2901"), "b200_hgx", "pci_id"),
        (_board("NVIDIA B200", 8, "0x2909"), "b200_168gb_hgx", "pci_id"),  # pci.ids: 168GB part
        (_board("NVIDIA GB200", 4, "0x2941"), "gb200_nvl72", "pci_id"),
        (_board("NVIDIA GH200 480GB", 1, "0x2342"), "generic", "pci_id"),
        (_board("NVIDIA H20", 8, "0x2329"), "generic", "pci_id"),
        (_board("NVIDIA GB300", 4, "0x31C2"), "generic", "pci_id"),
        (_board("NVIDIA L40S", 1, "0x26B9"), "generic", "none"),
        ([], "generic", "none"),
    ],
)
def test_profile_by_pci_id_first_then_name(
    gpus: list[dict[str, Any]], profile: str, source: str
) -> None:
    detected = detect_profile(gpus)
    assert (detected["profile"], detected["source"]) == (profile, source)
    assert hardware_profile(gpus) == profile


def test_name_contradicting_the_pci_id_is_a_problem() -> None:
    gpus = _board("NVIDIA H200", 8, "0x2330")
    detected = detect_profile(gpus)
    assert detected["profile"] == "h100_hgx"  # the id wins
    assert detected["problems"][0] == (
        "GPU 0 is named 'NVIDIA H200' but its PCI device id 0x2330 is a H100 SXM5 80GB"
    )


def test_mixed_parts_without_a_majority_are_generic() -> None:
    gpus = _board("NVIDIA H200", 4, "0x2335") + [
        {**gpu, "index": gpu["index"] + 4} for gpu in _board("NVIDIA H100", 4, "0x2330")
    ]
    detected = detect_profile(gpus)
    assert detected["profile"] == "generic"
    assert "different parts" in detected["problems"][0]


def test_one_unreadable_gpu_does_not_change_the_profile() -> None:
    gpus = _board("NVIDIA H200", 8, "0x2335")
    gpus[3] = {"index": 3, "name": None, "pci_device_id": None, "readable": False}
    assert detect_profile(gpus) == {"profile": "h200_hgx", "source": "pci_id", "problems": []}


def test_sw_mng_only_in_switch_management_vpd() -> None:
    b200 = FIXTURES / "hosts" / "b200_hgx" / "sys" / "class" / "infiniband"
    plain = (b200 / "mlx5_0" / "device" / "vpd").read_bytes()
    bridge = (b200 / "mlx5_2" / "device" / "vpd").read_bytes()
    assert vpd_has_sw_mng([plain, bridge]) is True
    assert vpd_has_sw_mng([plain]) is False
    assert vpd_has_sw_mng([]) is False
    assert vpd_has_sw_mng(["MLX:MN=MLNX:SMDL=SW_MNG"]) is True


def test_committed_fixtures_match_generator() -> None:
    spec = importlib.util.spec_from_file_location("nvidia_smi_fixtures", FIXTURES / "generate.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(generator)
    for relative, content in generator.render_all().items():
        assert (FIXTURES / relative).read_bytes() == content, f"regenerate {relative}"
