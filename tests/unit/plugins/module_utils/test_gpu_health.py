"""Real and generated nvidia-smi captures, and variants of them that production hosts print:
lost GPUs, sick fabrics, memory faults, stray bytes. Each must fail the right gate, naming the
GPU, and none may crash the parser or change the host's profile."""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.module_utils import _hardware
from ansible_collections.onprem.llm.plugins.module_utils._gpu_gates import (
    gate_dcgm_diag,
    gpu_gates,
    profile_check,
)
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_smi import (
    HostReadings,
    NvidiaSmiError,
    SmiRun,
    build_facts,
    parse_nvidia_smi_xml,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
GENERATED = ["h100_hgx", "h200_hgx", "b200_hgx", "gb200_tray", "h100_pcie_mig", "l40s_single",
             "t4_r450"]  # fmt: skip
REAL = sorted(path.stem for path in (FIXTURES / "real").glob("*.xml"))
CAPTURES = [f"generated/{name}" for name in GENERATED] + [f"real/{name}" for name in REAL]

# capture -> (profile, GPUs listed, driver, PCI device id of GPU 0)
EXPECTED = {
    "generated/h100_hgx": ("h100_hgx", 8, "560.35.03", "0x2330"),
    "generated/h200_hgx": ("h200_hgx", 8, "570.133.20", "0x2335"),
    "generated/b200_hgx": ("b200_hgx", 8, "570.158.01", "0x2901"),
    "generated/gb200_tray": ("gb200_nvl72", 4, "580.126.09", "0x2941"),
    "generated/h100_pcie_mig": ("generic", 1, "570.133.20", "0x2331"),
    "generated/l40s_single": ("generic", 1, "535.216.01", "0x26B9"),
    "generated/t4_r450": ("generic", 2, "450.248.02", "0x1EB8"),
    "real/onprem_h200-vm-r580": ("h200_hgx", 1, "580.159.04", "0x2335"),
    "real/telegraf_a100-sxm4-v12": ("generic", 1, "535.54.03", "0x20B2"),
    "real/telegraf_a10g": ("generic", 1, "515.105.01", "0x0000"),
    "real/telegraf_rtx-3080-v13": ("generic", 1, "595.58.03", "0x2216"),
    "real/telegraf_tesla-t4": ("generic", 1, "515.105.01", "0x1EB8"),
}
# Gates that a capture fails as it stands, and why (the captures are what the machines were).
KNOWN_FAILURES = {
    "generated/l40s_single": {"persistence_mode"},  # persistence off on that card
    "generated/t4_r450": {"ecc"},  # one GPU carries a volatile DBE
    # One H200 SXM of an HGX board passed through to a VM: 1 of 8 GPUs, no fabric visible.
    "real/onprem_h200-vm-r580": {"gpu_count", "fabric"},
    "real/telegraf_a100-sxm4-v12": {"gpu_count", "persistence_mode"},  # 4 attached, 1 listed
    # Cloud VMs and a desktop: persistence mode off, and no ECC on the GeForce card.
    "real/telegraf_a10g": {"persistence_mode"},
    "real/telegraf_rtx-3080-v13": {"persistence_mode", "ecc"},
    "real/telegraf_tesla-t4": {"persistence_mode"},
}


def capture(name: str) -> str:
    kind, stem = name.split("/")
    path = FIXTURES / ("real" if kind == "real" else "") / f"{stem}.xml"
    return path.read_text(encoding="utf-8")


def host_facts(name: str, text: str | bytes | None = None, override: str = "") -> dict[str, Any]:
    """Facts as the module builds them; generated hosts bring their /proc tree."""
    kind, stem = name.split("/")
    text = capture(name) if text is None else text
    root = FIXTURES / "hosts" / stem
    version = root / "proc/driver/nvidia/version"
    switches = root / "proc/driver/nvidia-nvswitch/devices"
    driver = re.search(r"<driver_version>([^<]+)<", str(capture(name)))
    proc = (
        version.read_text()
        if kind == "generated" and version.exists()
        else f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver.group(1) if driver else '?'}"
        "  Release Build\n"
    )
    return build_facts(
        HostReadings(
            smi=SmiRun("/usr/bin/nvidia-smi", 0, text, ""),
            proc_version=proc,
            nvswitch_devices=sorted(p.name for p in switches.iterdir())
            if switches.exists()
            else [],
            ib_vpds=[
                p.read_bytes() for p in sorted(root.glob("sys/class/infiniband/*/device/vpd"))
            ],
            profile_override=override,
        )
    )


def report(facts: dict[str, Any], profile: str = "") -> dict[str, Any]:
    key = profile or facts["hardware_profile"]
    expected = _hardware.validation_expectations().get(key, {})
    return gpu_gates(
        facts,
        profile,
        expected_gpu_count=expected.get("gpu_count"),
        expected_model=expected.get("model"),
        skip=["container_cdi", "imex"],
    )


def failed(result: dict[str, Any]) -> set[str]:
    return {name for name, gate in result["gates"].items() if gate["status"] == "failed"}


def in_gpu(text: str, index: int, old: str, new: str, count: int = 1) -> str:
    """The capture with `old` replaced by `new` inside the index-th <gpu> block only."""
    parts = re.split(r"(?=<gpu id=)", text)
    block = parts[index + 1]
    assert old in block, f"{old!r} not in GPU {index}"
    parts[index + 1] = block.replace(old, new, count)
    return "".join(parts)


@pytest.mark.parametrize("name", CAPTURES)
def test_every_capture_parses_with_its_profile(name: str) -> None:
    profile, count, driver, device = EXPECTED[name]
    facts = host_facts(name)
    assert facts["gpu_count"] == count
    assert facts["userspace_driver_version"] == driver
    assert facts["hardware_profile"] == profile
    assert facts["gpus"][0]["pci_device_id"] == device
    assert all(gpu["readable"] for gpu in facts["gpus"])
    assert facts["unreadable_gpus"] == []


@pytest.mark.parametrize("name", CAPTURES)
def test_every_capture_gates(name: str) -> None:
    result = report(host_facts(name))
    assert failed(result) == KNOWN_FAILURES.get(name, set()), result["failures"]


def test_real_a100_lists_one_of_four_attached_gpus() -> None:
    facts = host_facts("real/telegraf_a100-sxm4-v12")
    assert facts["gpus"][0]["part"] == "A100 SXM4 80GB"
    assert facts["nvswitch_board"] is True  # an HGX A100 part: no profile, still NVSwitch
    assert facts["gpus"][0]["mig_device_count"] == 4
    gate = report(facts)["gates"]["gpu_count"]
    assert gate["reason"] == "1 readable GPUs: nvidia-smi counts 4 attached GPUs but lists 1"


def test_real_r595_reads_the_newest_health_fields() -> None:
    (gpu,) = host_facts("real/telegraf_rtx-3080-v13")["gpus"]
    assert gpu["recovery_action"] == "None"
    assert gpu["memory_health"]["channel_repair_pending"] is False
    assert gpu["fabric_health"]["summary"] is None  # N/A off a fabric
    assert gpu["fabric_state"] == "N/A"


def test_cloud_vm_hiding_the_pci_id_falls_back_to_the_name() -> None:
    (gpu,) = host_facts("real/telegraf_a10g")["gpus"]
    assert (gpu["pci_device_id"], gpu["pci_vendor_id"], gpu["part"]) == ("0x0000", "0x00DE", None)


# Variants of real and generated captures: (capture, GPU, old, new, gate, words in the reason)
LOST = "GPU is lost. Reboot the system to recover this GPU"
VARIANTS = [
    ("generated/h200_hgx", 3, "<product_name>NVIDIA H200</product_name>",
     f"<product_name>{LOST}</product_name>", "gpu_count", "GPU 3"),
    ("generated/h200_hgx", 5, "<persistence_mode>Enabled</persistence_mode>",
     "<persistence_mode>Unknown Error</persistence_mode>", "gpu_count", "GPU 5"),
    ("generated/gb200_tray", 2, "<product_name>NVIDIA GB200</product_name>",
     "<product_name>[GPU is lost]</product_name>", "gpu_count", "GPU 2"),
    ("generated/h200_hgx", 6, "<state>Completed</state>", "<state>In Progress</state>",
     "fabric", "GPU 6"),
    ("generated/h200_hgx", 1, "<status>Success</status>",
     "<status>NV_ERR_INSUFFICIENT_RESOURCES</status>", "fabric", "GPU 1"),
    ("generated/gb200_tray", 1, "<route_unhealthy>False</route_unhealthy>",
     "<route_unhealthy>True</route_unhealthy>", "fabric", "GPU 1"),
    ("generated/gb200_tray", 3, "<bandwidth>Full</bandwidth>",
     "<summary>Unhealthy</summary><bandwidth>Full</bandwidth>", "fabric", "GPU 3"),
    ("real/telegraf_rtx-3080-v13", 0, "<gpu_recovery_action>None</gpu_recovery_action>",
     "<gpu_recovery_action>Drain and Reset</gpu_recovery_action>", "recovery_action", "GPU 0"),
    ("real/telegraf_rtx-3080-v13", 0, "<unrepairable_memory>N/A</unrepairable_memory>",
     "<unrepairable_memory>Uncorrectable Error</unrepairable_memory>", "memory_health", "GPU 0"),
    ("generated/h200_hgx", 4, "<sram_threshold_exceeded>No</sram_threshold_exceeded>",
     "<sram_threshold_exceeded>Yes</sram_threshold_exceeded>", "memory_health", "GPU 4"),
    ("generated/t4_r450", 0, "<pending_retirement>No</pending_retirement>",
     "<pending_retirement>Yes</pending_retirement>", "page_retirement", "GPU 0"),
    ("real/telegraf_tesla-t4", 0, "<pending_retirement>No</pending_retirement>",
     "<pending_retirement>Yes</pending_retirement>", "page_retirement", "GPU 0"),
    ("generated/h100_hgx", 7, "<remapped_row_pending>No</remapped_row_pending>",
     "<remapped_row_pending>Yes</remapped_row_pending>", "row_remapping", "GPU 7"),
    ("generated/b200_hgx", 2, "<remapped_row_failure>No</remapped_row_failure>",
     "<remapped_row_failure>Yes</remapped_row_failure>", "row_remapping", "GPU 2"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "index", "old", "new", "gate", "words"), VARIANTS)
def test_variant_fails_its_gate_naming_the_gpu(
    name: str, index: int, old: str, new: str, gate: str, words: str
) -> None:
    healthy = host_facts(name)
    facts = host_facts(name, in_gpu(capture(name), index, old, new))
    # A bad GPU fails a gate; it never changes what the host is.
    assert facts["hardware_profile"] == healthy["hardware_profile"]
    result = report(facts)
    assert result["gates"][gate]["status"] == "failed", result["gates"][gate]
    assert words in result["gates"][gate]["reason"]


def test_all_na_gpu_is_unreadable_and_counted_out() -> None:
    text = capture("generated/h200_hgx")
    parts = re.split(r"(?=<gpu id=)", text)
    parts[3] = re.sub(r">[^<\s][^<]*<", ">[N/A]<", parts[3])
    facts = host_facts("generated/h200_hgx", "".join(parts))
    assert facts["unreadable_gpus"] == [2]
    assert facts["hardware_profile"] == "h200_hgx"
    result = report(facts)
    assert "GPU 2" in result["gates"]["gpu_count"]["reason"]
    assert "GPU 2" in result["gates"]["gpu_model"]["reason"]


def test_lost_gpu_advice_is_a_hardware_fault_not_the_inventory() -> None:
    text = in_gpu(capture("generated/h200_hgx"), 3, "<product_name>NVIDIA H200</product_name>",
                  f"<product_name>{LOST}</product_name>")  # fmt: skip
    check = profile_check(host_facts("generated/h200_hgx", text), "h200_hgx")
    assert check["ok"] is True
    assert "GPU 3 cannot be read: a hardware fault" in check["message"]
    assert "inventory" not in check["message"]
    wrong = profile_check(host_facts("generated/h100_hgx"), "h200_hgx")
    assert wrong["ok"] is False and "fix the host's inventory group" in wrong["message"]


def test_h200_nvl_is_not_an_h200() -> None:
    text = capture("generated/h200_hgx").replace("NVIDIA H200<", "NVIDIA H200 NVL<")
    text = text.replace("233510DE", "233B10DE")
    facts = host_facts("generated/h200_hgx", text)
    assert facts["hardware_profile"] == "generic"
    result = report(facts, "h200_hgx")
    assert result["gates"]["gpu_model"]["status"] == "failed"
    assert "0x233B" in result["gates"]["gpu_model"]["reason"]
    # Without PCI ids, the name alone must not pass either.
    facts = host_facts("generated/h200_hgx", text.replace("233B10DE", "00000000"))
    assert report(facts, "h200_hgx")["gates"]["gpu_model"]["status"] == "failed"


def test_unnamed_gpu_is_known_by_its_pci_id() -> None:
    text = capture("generated/h200_hgx").replace("NVIDIA H200<", "NVIDIA Graphics Device<")
    facts = host_facts("generated/h200_hgx", text)
    assert (facts["hardware_profile"], facts["profile_source"]) == ("h200_hgx", "pci_id")
    assert report(facts)["gates"]["gpu_model"]["status"] == "passed"


def test_name_contradicting_the_pci_id_is_reported() -> None:
    text = in_gpu(capture("generated/h200_hgx"), 0, "233510DE", "233010DE")
    facts = host_facts("generated/h200_hgx", text)
    assert facts["hardware_profile"] == "h200_hgx"  # 7 of 8 still read as H200
    assert any("0x2330 is a H100 SXM5 80GB" in problem for problem in facts["problems"])


def test_inventory_override_is_used_and_logged() -> None:
    facts = host_facts("real/telegraf_a100-sxm4-v12", override="generic")
    assert (facts["hardware_profile"], facts["profile_source"]) == ("generic", "inventory")
    assert facts["profile_override_note"] is None  # the same as detected
    facts = host_facts("generated/h100_hgx", override="h200_hgx")
    assert (facts["hardware_profile"], facts["detected_profile"]) == ("h200_hgx", "h100_hgx")
    assert facts["profile_override_note"] == (
        "hardware profile h200_hgx set by the inventory; the GPUs read as h100_hgx (by pci id)"
    )
    facts = host_facts("generated/h100_hgx", override="h999")
    assert facts["hardware_profile"] == "h100_hgx"
    assert "override 'h999' is not one of" in facts["problems"][-1]


@pytest.mark.parametrize("name", CAPTURES)
def test_non_utf8_process_names_do_not_crash(name: str) -> None:
    raw = capture(name).encode()
    raw = raw.replace(b"<product_name>", b"<product_name>\xff\xfe", 1)
    if b"<processes>" in raw:
        raw = raw.replace(
            b"<processes>",
            b"<processes><process_info><pid>7</pid><process_name>/opt/\xe9t\xc3\x28/py"
            b"</process_name></process_info>",
            1,
        )
    facts = host_facts(name, raw)
    assert facts["gpu_count"] == EXPECTED[name][1]
    # As the module gets it from run_command(errors="surrogateescape").
    facts = host_facts(name, raw.decode("utf-8", "surrogateescape"))
    assert facts["gpu_count"] == EXPECTED[name][1]


@pytest.mark.parametrize("name", CAPTURES)
def test_control_characters_do_not_lose_the_gpus(name: str) -> None:
    text = capture(name).replace("<uuid>GPU-", "<uuid>GPU-\x01\x1b\x07", 1)
    facts = host_facts(name, text)
    assert facts["gpu_count"] == EXPECTED[name][1]
    assert facts["hardware_profile"] == EXPECTED[name][0]


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    given = None


def _mutations(seed: int, text: bytes) -> bytes:
    rng = random.Random(seed)
    data = bytearray(text)
    for _unused in range(rng.randint(1, 20)):
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.4:
            data[at] = rng.randrange(256)
        elif choice < 0.7:
            del data[at : at + rng.randint(1, 40)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _unused in range(rng.randint(1, 8)))
    return bytes(data)


def _never_raises_but_parse_errors(data: bytes | str) -> None:
    with contextlib.suppress(NvidiaSmiError):
        parse_nvidia_smi_xml(data)
    facts = build_facts(
        HostReadings(smi=SmiRun("/usr/bin/nvidia-smi", 0, data, ""), proc_version=None)
    )
    assert isinstance(facts["gpus"], list)
    gpu_gates(facts, "", skip=["container_cdi"])


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("seed", range(25))
def test_mutated_captures_never_crash(name: str, seed: int) -> None:
    _never_raises_but_parse_errors(_mutations(seed, capture(name).encode()))


if given is not None:

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(CAPTURES),
        st.integers(min_value=0, max_value=1 << 30),
        st.binary(max_size=64),
        st.text(max_size=32),
    )
    def test_fuzzed_captures_never_crash(name: str, at: int, junk: bytes, text: str) -> None:
        raw = capture(name).encode()
        cut = at % len(raw)
        _never_raises_but_parse_errors(raw[:cut] + junk + raw[cut:])
        _never_raises_but_parse_errors(capture(name)[:cut] + text + capture(name)[cut:])


DCGMI = Path(__file__).resolve().parents[3] / "stand_ins" / "nvidia" / "payload" / "dcgmi"


@pytest.fixture
def host_engine() -> Iterator[int]:
    """A listening port where the stand-in dcgmi looks for nv-hostengine."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def run_diag(port: int, etc: Path) -> dict[str, Any]:
    env = {**os.environ, "STAND_IN_ETC": str(etc), "STAND_IN_DCGM_PORT": str(port)}
    done = subprocess.run(
        [sys.executable, str(DCGMI), "diag", "-r", "2"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    return {"level": 2, "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def test_stand_in_dcgmi_diag_fails_the_gate_when_told(host_engine: int, tmp_path: Path) -> None:
    passed = run_diag(host_engine, tmp_path)
    assert passed["rc"] == 0
    assert gate_dcgm_diag(passed) == {"status": "passed", "reason": "dcgmi diag -r 2 passed"}
    (tmp_path / "dcgmi-diag-fail").write_text("3\n")
    failed_run = run_diag(host_engine, tmp_path)
    assert failed_run["rc"] != 0
    assert "| Overall Result            | Fail" in failed_run["stdout"]
    gate = gate_dcgm_diag(failed_run)
    assert gate["status"] == "failed"
    assert gate["reason"].startswith("dcgmi diag -r 2 failed (rc 1): Memory Fail - GPU: 3")


def test_one_optional_field_reading_unknown_error_is_not_a_lost_gpu() -> None:
    text = in_gpu(capture("generated/h200_hgx"), 2, "<gpu_temp>", "<gpu_temp>Unknown Error<x/>")
    text = text.replace("<x/>", "", 1)
    text = re.sub(r"(<gpu_temp>Unknown Error)[^<]*", r"\1", text, count=1)
    facts = host_facts("generated/h200_hgx", text)
    assert facts["unreadable_gpus"] == []
    assert facts["gpus"][2]["temperature_c"] is None
