"""GPU host facts from `nvidia-smi -q -x`, /proc/driver and InfiniBand VPD.

Standard library only, so the gpu_facts module, the onprem_llm package and unit tests share it.
Element names differ between driver branches; each reader below names the variants it accepts.
Values nvidia-smi does not report ("N/A", "[N/A]", "Not Supported", ...) become None. Nothing
here raises on odd input except parse_nvidia_smi_xml, whose NvidiaSmiError reads as a problem.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")

FABRIC_STATES = ("Not Started", "In Progress", "Completed")  # least to most advanced

_NOT_REPORTED = frozenset(
    {
        "",
        "n/a",
        "not supported",
        "not available",
        "unknown error",
        "requested functionality has been deprecated",
    }
)
_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?")
_NVRM_RE = re.compile(
    r"NVRM version:\s+NVIDIA UNIX\s+"
    r"(?:(?P<open>Open Kernel Module) for (?P<open_arch>\S+)|(?P<arch>\S+) Kernel Module)"
    r"\s+(?P<version>\d+(?:\.\d+)+)"
)
_NVML_LIB_RE = re.compile(r"NVML library version:\s*(?P<version>\d+(?:\.\d+)+)")
# Board parts the HGX and NVL72 profiles are built from; PCIe and NVL cards are other products.
_MODELS = (
    ("gb200", re.compile(r"\bGB200\b")),
    ("b200", re.compile(r"\bB200\b")),
    ("h200", re.compile(r"\bH200\b")),
    ("h100", re.compile(r"\bH100\b")),
)
_ADD_IN_CARD_RE = re.compile(r"\b(?:PCIe|NVL)\b", re.IGNORECASE)
_HGX_PROFILES = (
    ("h100_hgx", "h100", "nvswitch"),
    ("h200_hgx", "h200", "nvswitch"),
    ("b200_hgx", "b200", "nvlink5"),
)
_ECC_CORRECTED = ("sram_correctable", "dram_correctable")
# Newer branches (560 does) split SRAM uncorrectable into parity and SEC-DED; older ones and
# pre-Ampere GPUs print a single count.
_ECC_UNCORRECTED = (
    "sram_uncorrectable",
    "sram_uncorrectable_parity",
    "sram_uncorrectable_secded",
    "dram_uncorrectable",
)
# Renamed over time: power_readings (older branches), gpu_power_readings/power_draw (535-560),
# instant and average draw (570 on).
_POWER_DRAW = (
    "gpu_power_readings/instant_power_draw",
    "gpu_power_readings/power_draw",
    "gpu_power_readings/average_power_draw",
    "power_readings/instant_power_draw",
    "power_readings/power_draw",
)
_POWER_LIMIT = (
    "gpu_power_readings/current_power_limit",
    "gpu_power_readings/enforced_power_limit",
    "gpu_power_readings/power_limit",
    "power_readings/enforced_power_limit",
    "power_readings/power_limit",
)


class NvidiaSmiError(ValueError):
    """nvidia-smi output that cannot be read; the message is meant for an operator."""


@dataclass
class SmiRun:
    """One `nvidia-smi -q -x` run; path None when the binary is not installed."""

    path: str | None
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""


@dataclass
class HostReadings:
    """What was read from one host; None or empty where the source is absent."""

    smi: SmiRun
    proc_version: str | None = None
    nvswitch_devices: Sequence[str] = ()
    ib_vpds: Sequence[bytes | str] = ()
    problems: list[str] = field(default_factory=list)


def reported(raw: str | None) -> str | None:
    """Return the stripped value, or None where nvidia-smi says it is not reported."""
    if raw is None:
        return None
    value = " ".join(raw.split())
    if value.startswith("[") and value.endswith("]"):
        return None  # "[N/A]", "[Not Supported]", "[GPU requires reset]", ...
    return None if value.lower() in _NOT_REPORTED else value


def to_int(raw: str | None) -> int | None:
    """Leading integer of a value such as "81559 MiB" or "41 C"."""
    match = _NUMBER_RE.match(reported(raw) or "")
    return int(float(match.group())) if match else None


def to_float(raw: str | None) -> float | None:
    """Leading number of a value such as "71.50 W"."""
    match = _NUMBER_RE.match(reported(raw) or "")
    return float(match.group()) if match else None


def to_enabled(raw: str | None) -> bool | None:
    """Enabled/Disabled as a bool."""
    return {"enabled": True, "disabled": False}.get((reported(raw) or "").lower())


def to_yes_no(raw: str | None) -> bool | None:
    """Yes/No as a bool."""
    return {"yes": True, "no": False}.get((reported(raw) or "").lower())


def _first(elem: ET.Element, paths: Iterable[str], convert: Callable[[str | None], _T]) -> _T:
    """First converted value that is not None among `paths`, else convert(None)."""
    for path in paths:
        value = convert(elem.findtext(path))
        if value is not None:
            return value
    return convert(None)


def parse_kernel_module(text: str | None) -> dict[str, str] | None:
    """Version, flavour (open|proprietary) and arch of the loaded module, from
    /proc/driver/nvidia/version; None when the text is absent or not recognised."""
    match = _NVRM_RE.search(text or "")
    if not match:
        return None
    return {
        "version": match["version"],
        "flavor": "open" if match["open"] else "proprietary",
        "arch": match["open_arch"] or match["arch"],
    }


def nvswitch_present(devices: Iterable[str]) -> bool:
    """NVSwitches the driver registered: entries of /proc/driver/nvidia-nvswitch/devices."""
    return any(str(name).strip() for name in devices)


def vpd_has_sw_mng(vpds: Iterable[bytes | str]) -> bool:
    """NVLink5 switch management: a ConnectX bridge whose VPD carries SW_MNG (HGX B200/B300)."""
    return any(b"SW_MNG" in (v.encode() if isinstance(v, str) else bytes(v)) for v in vpds)


def ecc_counts(scope: ET.Element | None) -> dict[str, int | None]:
    """Corrected and uncorrected totals of an <ecc_errors>/<volatile|aggregate> block."""
    if scope is None:
        return {"corrected": None, "uncorrected": None}
    if scope.find("single_bit") is not None or scope.find("double_bit") is not None:
        # Older layout: per-location counts under single_bit/double_bit, each with a total.
        return {
            "corrected": to_int(scope.findtext("single_bit/total", scope.findtext("single_bit"))),
            "uncorrected": to_int(scope.findtext("double_bit/total", scope.findtext("double_bit"))),
        }
    return {
        "corrected": _sum_children(scope, _ECC_CORRECTED),
        "uncorrected": _sum_children(scope, _ECC_UNCORRECTED),
    }


def _sum_children(scope: ET.Element, tags: Iterable[str]) -> int | None:
    values = [to_int(scope.findtext(tag)) for tag in tags]
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def retired_pages(gpu: ET.Element) -> dict[str, Any]:
    """Page retirement (pre-Ampere); None where the GPU uses row remapping instead."""
    pending = gpu.findtext("retired_pages/pending_retirement")
    if to_yes_no(pending) is None:
        pending = gpu.findtext("retired_pages/pending_blacklist")  # older name
    return {
        "single_bit": to_int(
            gpu.findtext("retired_pages/multiple_single_bit_retirement/retired_count")
        ),
        "double_bit": to_int(gpu.findtext("retired_pages/double_bit_retirement/retired_count")),
        "pending": to_yes_no(pending),
    }


def remapped_rows(gpu: ET.Element) -> dict[str, Any]:
    """Row remapping (Ampere and later); all None where the block reads N/A."""
    return {
        "correctable": to_int(gpu.findtext("remapped_rows/remapped_row_corr")),
        "uncorrectable": to_int(gpu.findtext("remapped_rows/remapped_row_unc")),
        "pending": to_yes_no(gpu.findtext("remapped_rows/remapped_row_pending")),
        "failure": to_yes_no(gpu.findtext("remapped_rows/remapped_row_failure")),
    }


def fabric_state(gpu: ET.Element) -> str:
    """Fabric state as printed (Completed, In Progress, ...); "N/A" on branches without it."""
    state = " ".join((gpu.findtext("fabric/state") or "").split())
    return state if reported(state) or state == "Not Supported" else "N/A"


def parse_gpu(gpu: ET.Element, index: int) -> dict[str, Any]:
    """Facts of one <gpu>; `index` is its position, which is nvidia-smi's (and NVML's) index."""
    return {
        "index": index,
        "minor_number": to_int(gpu.findtext("minor_number")),
        "uuid": reported(gpu.findtext("uuid")),
        "name": reported(gpu.findtext("product_name")),
        "architecture": reported(gpu.findtext("product_architecture")),
        "pci_bus_id": reported(gpu.findtext("pci/pci_bus_id")) or reported(gpu.get("id")),
        "memory_total_mib": to_int(gpu.findtext("fb_memory_usage/total")),
        "persistence_mode": to_enabled(gpu.findtext("persistence_mode")),
        "ecc_mode": to_enabled(gpu.findtext("ecc_mode/current_ecc")),
        "ecc_errors": {
            "volatile": ecc_counts(gpu.find("ecc_errors/volatile")),
            "aggregate": ecc_counts(gpu.find("ecc_errors/aggregate")),
        },
        "retired_pages": retired_pages(gpu),
        "remapped_rows": remapped_rows(gpu),
        "mig_mode": to_enabled(gpu.findtext("mig_mode/current_mig")),
        "mig_mode_pending": to_enabled(gpu.findtext("mig_mode/pending_mig")),
        "mig_device_count": len(gpu.findall("mig_devices/mig_device")),
        "temperature_c": to_int(gpu.findtext("temperature/gpu_temp")),
        "power_draw_w": _first(gpu, _POWER_DRAW, to_float),
        "power_limit_w": _first(gpu, _POWER_LIMIT, to_float),
        "fabric_state": fabric_state(gpu),
        "fabric_status": reported(gpu.findtext("fabric/status")),
    }


def parse_nvidia_smi_xml(text: str | None) -> dict[str, Any]:
    """Driver, CUDA version and GPUs of `nvidia-smi -q -x` output, or raise NvidiaSmiError."""
    if not (text or "").strip():
        raise NvidiaSmiError("nvidia-smi -q -x printed nothing")
    try:
        root = ET.fromstring(text)  # the DOCTYPE names a local DTD that expat never fetches
    except ET.ParseError as err:
        raise NvidiaSmiError(f"nvidia-smi -q -x output is not valid XML ({err})") from None
    if root.tag != "nvidia_smi_log":
        raise NvidiaSmiError(
            f"nvidia-smi -q -x output starts with <{root.tag}>, not <nvidia_smi_log>"
        )
    return {
        "driver_version": reported(root.findtext("driver_version")),
        "cuda_version": reported(root.findtext("cuda_version")),
        "attached_gpus": to_int(root.findtext("attached_gpus")),
        "gpus": [parse_gpu(gpu, index) for index, gpu in enumerate(root.findall("gpu"))],
    }


def gpu_model(name: str | None) -> str | None:
    """h100, h200, b200 or gb200 for the SXM/superchip parts the profiles use, else None."""
    if not name or _ADD_IN_CARD_RE.search(name):
        return None
    return next((model for model, pattern in _MODELS if pattern.search(name)), None)


def hardware_profile(gpus: Sequence[dict[str, Any]], nvswitch: bool, nvlink5: bool) -> str:
    """h100_hgx/h200_hgx (8 GPUs + NVSwitch), b200_hgx (8 + NVLink5 switch management),
    gb200_nvl72 (a 4-GPU compute tray: two Grace superchips), else generic."""
    models = {gpu_model(gpu.get("name")) for gpu in gpus}
    if len(models) != 1:
        return "generic"
    model = models.pop()
    if model == "gb200" and len(gpus) == 4:
        return "gb200_nvl72"
    links = {"nvswitch": nvswitch, "nvlink5": nvlink5}
    for profile, wanted, link in _HGX_PROFILES:
        if model == wanted and len(gpus) == 8 and links[link]:
            return profile
    return "generic"


def overall_fabric_state(states: Sequence[str]) -> str:
    """Least advanced state among GPUs on a fabric; else Not Supported or N/A."""
    active = [state for state in states if state not in ("N/A", "Not Supported")]
    if active:
        unknown = [state for state in active if state not in FABRIC_STATES]
        return unknown[0] if unknown else min(active, key=FABRIC_STATES.index)
    return "Not Supported" if "Not Supported" in states else "N/A"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def read_smi(run: SmiRun, problems: list[str]) -> dict[str, Any] | None:
    """Parsed nvidia-smi log, or None with the reason appended to `problems`."""
    if run.path is None:
        problems.append("nvidia-smi not found: the NVIDIA userspace driver is not installed")
        return None
    if run.rc and not run.stdout.lstrip().startswith("<"):
        message = _first_line(run.stdout) or _first_line(run.stderr) or "no output"
        problems.append(f"{run.path} -q -x failed (rc {run.rc}): {message}")
        return None
    try:
        log = parse_nvidia_smi_xml(run.stdout)
    except NvidiaSmiError as err:
        problems.append(str(err))
        return None
    if run.rc:
        problems.append(
            f"{run.path} -q -x exited rc {run.rc} after printing XML; facts may be partial"
        )
    return log


def _versions(
    kernel: str | None, userspace: str | None, run: SmiRun
) -> tuple[str | None, bool | None]:
    """Userspace driver version and whether it matches the loaded module."""
    output = f"{run.stdout}\n{run.stderr}"
    if "version mismatch" in output.lower():
        # NVML refuses to start when library and module differ, the usual sign of a pending reboot.
        match = _NVML_LIB_RE.search(output)
        return (match["version"] if match else None), False
    if kernel is None or userspace is None:
        return userspace, None
    return userspace, kernel == userspace


def build_facts(readings: HostReadings) -> dict[str, Any]:
    """All GPU facts of one host from its raw readings."""
    problems = list(readings.problems)
    module = parse_kernel_module(readings.proc_version)
    if readings.proc_version is None:
        problems.append("NVIDIA kernel module not loaded: /proc/driver/nvidia/version is absent")
    elif module is None:
        problems.append(
            f"unrecognised /proc/driver/nvidia/version: {_first_line(readings.proc_version)!r}"
        )
    log = read_smi(readings.smi, problems) or {}
    gpus = log.get("gpus", [])
    kernel_version = module["version"] if module else None
    userspace, match = _versions(kernel_version, log.get("driver_version"), readings.smi)
    if match is False:
        problems.append(
            f"loaded kernel module {kernel_version or 'unknown'} differs from userspace driver "
            f"{userspace or 'unknown'}: reboot (or reload the modules) to finish the upgrade"
        )
    attached = log.get("attached_gpus")
    if attached is not None and attached != len(gpus):
        problems.append(f"nvidia-smi reports {attached} attached GPUs but lists {len(gpus)}")
    nvswitch = nvswitch_present(readings.nvswitch_devices)
    nvlink5 = vpd_has_sw_mng(readings.ib_vpds)
    return {
        "driver_loaded": readings.proc_version is not None or bool(gpus),
        "kernel_module_version": kernel_version,
        "kernel_module_flavor": module["flavor"] if module else None,
        "kernel_module_arch": module["arch"] if module else None,
        "userspace_driver_version": userspace,
        "driver_versions_match": match,
        "cuda_version": log.get("cuda_version"),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "fabric_state": overall_fabric_state([gpu["fabric_state"] for gpu in gpus]),
        "nvswitch_present": nvswitch,
        "nvswitch_count": sum(1 for name in readings.nvswitch_devices if str(name).strip()),
        "nvlink5_present": nvlink5,
        "hardware_profile": hardware_profile(gpus, nvswitch, nvlink5),
        "problems": problems,
    }
