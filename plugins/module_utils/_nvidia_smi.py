"""GPU host facts from `nvidia-smi -q -x`, /proc/driver and InfiniBand VPD.

Standard library only, so the gpu_facts module, the onprem_llm package and unit tests share it.
Element names differ between driver branches; each reader below names the variants it accepts.
Values nvidia-smi does not report ("N/A", "[N/A]", "Not Supported", ...) become None. Nothing
here raises on odd input except parse_nvidia_smi_xml, whose NvidiaSmiError reads as a problem.
Output is decoded leniently: nvidia-smi prints process names as the kernel has them (any bytes)
and a sick GPU can put control characters in a field; neither may cost the other GPUs' facts.

The hardware profile comes from the PCI device id of the GPUs (the table in _hardware), the
product name only where the id is unknown; GPUs that cannot be read do not take part.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ansible_collections.onprem.llm.plugins.module_utils import _hardware

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
# What nvidia-smi prints in place of a value when it cannot read the GPU at all.
_LOST_RE = re.compile(r"GPU is lost|GPU requires reset|Unable to determine the device", re.I)
_UNKNOWN_ERROR_RE = re.compile(r"Unknown Error", re.I)
# Where "Unknown Error" means the GPU itself cannot be read, not one unsupported field.
_IDENTITY_FIELDS = (
    "product_name",
    "uuid",
    "pci/pci_bus_id",
    "pci/pci_device_id",
    "persistence_mode",
    "fb_memory_usage/total",
    "ecc_mode/current_ecc",
)
# Characters XML 1.0 forbids; nvidia-smi passes some through from device strings.
_INVALID_XML_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
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
    stdout: bytes | str = ""
    stderr: bytes | str = ""


@dataclass
class HostReadings:
    """What was read from one host; None or empty where the source is absent."""

    smi: SmiRun
    proc_version: str | None = None
    nvswitch_devices: Sequence[str] = ()
    ib_vpds: Sequence[bytes | str] = ()
    problems: list[str] = field(default_factory=list)
    profile_override: str = ""  # the inventory's profile, which then wins over detection


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


def fabric_health(gpu: ET.Element) -> dict[str, Any]:
    """The <fabric><health> block (r570 on): summary and the flags that say a route is bad."""
    health = gpu.find("fabric/health")

    def flag(tag: str) -> bool | None:
        value = (reported(health.findtext(tag)) or "").lower() if health is not None else ""
        return {"true": True, "yes": True, "false": False, "no": False}.get(value)

    return {
        "summary": reported(health.findtext("summary")) if health is not None else None,
        "bandwidth": reported(health.findtext("bandwidth")) if health is not None else None,
        "route_unhealthy": flag("route_unhealthy"),
        "route_recovery_in_progress": flag("route_recovery_in_progress"),
        "access_timeout_recovery": flag("access_timeout_recovery"),
        "incorrect_configuration": flag("incorrect_configuration"),
    }


def memory_health(gpu: ET.Element) -> dict[str, Any]:
    """Memory faults that need more than a reset: SRAM threshold, unrepairable memory."""
    unrepairable = reported(gpu.findtext("ecc_errors/unrepairable_memory"))
    return {
        "sram_threshold_exceeded": to_yes_no(
            gpu.findtext("ecc_errors/aggregate/sram_threshold_exceeded")
        ),
        # "No", or what the driver says is wrong ("Uncorrectable Error", ...)
        "unrepairable": None
        if unrepairable is None
        else unrepairable.lower() not in ("no", "none"),
        "unrepairable_reason": unrepairable,
        "channel_repair_pending": to_yes_no(gpu.findtext("ecc_errors/channel_repair_pending")),
        "tpc_repair_pending": to_yes_no(gpu.findtext("ecc_errors/tpc_repair_pending")),
    }


def read_error(gpu: ET.Element) -> str | None:
    """Why a <gpu> block cannot be trusted, None when it reads normally.

    A GPU that fell off the bus prints "GPU is lost" (or asks for a reset) in its fields, or
    "Unknown Error" where its identity and basic state belong, or only placeholders; such a GPU
    must not count as present, nor decide the host's profile. A single optional field reading
    "Unknown Error" on an otherwise sound GPU is not enough."""
    texts = [" ".join((elem.text or "").split()) for elem in gpu.iter() if len(elem) == 0]
    for text in texts:
        if _LOST_RE.search(text):
            return f"nvidia-smi reads {text!r}"
    for path in _IDENTITY_FIELDS:
        text = " ".join((gpu.findtext(path) or "").split())
        if _UNKNOWN_ERROR_RE.search(text):
            return f"nvidia-smi reads {text!r} for {path}"
    if not any(reported(text) for text in texts):
        return "nvidia-smi reports no value for this GPU"
    if reported(gpu.findtext("uuid")) is None and reported(gpu.findtext("product_name")) is None:
        return "nvidia-smi gives neither its name nor its UUID"
    return None


def parse_gpu(gpu: ET.Element, index: int) -> dict[str, Any]:
    """Facts of one <gpu>; `index` is its position, which is nvidia-smi's (and NVML's) index."""
    pci = _hardware.parse_pci_device_id(gpu.findtext("pci/pci_device_id"))
    part = _hardware.part_by_pci(*pci) if pci else None
    error = read_error(gpu)
    return {
        "index": index,
        "readable": error is None,
        "read_error": error,
        "minor_number": to_int(gpu.findtext("minor_number")),
        "uuid": reported(gpu.findtext("uuid")),
        "name": reported(gpu.findtext("product_name")),
        "architecture": reported(gpu.findtext("product_architecture")),
        "pci_bus_id": reported(gpu.findtext("pci/pci_bus_id")) or reported(gpu.get("id")),
        "pci_device_id": f"0x{pci[0]:04X}" if pci else None,
        "pci_vendor_id": f"0x{pci[1]:04X}" if pci else None,
        "part": part.name if part else None,
        "memory_total_mib": to_int(gpu.findtext("fb_memory_usage/total")),
        "persistence_mode": to_enabled(gpu.findtext("persistence_mode")),
        "ecc_mode": to_enabled(gpu.findtext("ecc_mode/current_ecc")),
        "ecc_errors": {
            "volatile": ecc_counts(gpu.find("ecc_errors/volatile")),
            "aggregate": ecc_counts(gpu.find("ecc_errors/aggregate")),
        },
        "memory_health": memory_health(gpu),
        "retired_pages": retired_pages(gpu),
        "remapped_rows": remapped_rows(gpu),
        "recovery_action": reported(gpu.findtext("gpu_recovery_action")),
        "mig_mode": to_enabled(gpu.findtext("mig_mode/current_mig")),
        "mig_mode_pending": to_enabled(gpu.findtext("mig_mode/pending_mig")),
        "mig_device_count": len(gpu.findall("mig_devices/mig_device")),
        "temperature_c": to_int(gpu.findtext("temperature/gpu_temp")),
        "power_draw_w": _first(gpu, _POWER_DRAW, to_float),
        "power_limit_w": _first(gpu, _POWER_LIMIT, to_float),
        "fabric_state": fabric_state(gpu),
        "fabric_status": reported(gpu.findtext("fabric/status")),
        "fabric_health": fabric_health(gpu),
    }


def decode_output(raw: bytes | str | None) -> str:
    """nvidia-smi output as text that an XML parser accepts, whatever bytes it held.

    Bytes that are not UTF-8 (process names) become U+FFFD; so do surrogates left by a caller
    that decoded with surrogateescape. Characters XML forbids (control characters) are dropped:
    expat rejects the whole document for one of them."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return _INVALID_XML_RE.sub("", bytes(raw).decode("utf-8", "replace"))


def parse_nvidia_smi_xml(text: bytes | str | None) -> dict[str, Any]:
    """Driver, CUDA version and GPUs of `nvidia-smi -q -x` output, or raise NvidiaSmiError."""
    text = decode_output(text)
    if not text.strip():
        raise NvidiaSmiError("nvidia-smi -q -x printed nothing")
    # The declaration may name another encoding; the text is already decoded.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
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


def gpu_part(gpu: Mapping[str, Any]) -> _hardware.Part | None:
    """The known part of a parsed GPU, from its pci_device_id (0x2335) and vendor."""
    try:
        device = int(str(gpu.get("pci_device_id")), 16)
        vendor = int(str(gpu.get("pci_vendor_id") or hex(_hardware.NVIDIA_VENDOR_ID)), 16)
    except ValueError:
        return None
    return _hardware.part_by_pci(device, vendor)


def gpu_profile(gpu: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(profile, source, contradiction) of one GPU: by PCI device id when the id is known,
    else by product name; a name that points elsewhere than the id is a contradiction."""
    named = _hardware.profile_by_name(gpu.get("name"))
    part = gpu_part(gpu)
    if part is None:
        return named, ("product_name" if named else None), None
    contradiction = None
    if named and named != part.profile:
        contradiction = (
            f"GPU {gpu.get('index')} is named {gpu.get('name')!r} but its PCI device id "
            f"{gpu.get('pci_device_id')} is a {part.name}"
        )
    return part.profile, "pci_id", contradiction


def detect_profile(gpus: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The host's profile from its readable GPUs: the profile most of them point to.

    An unreadable GPU takes no part (it fails the count gate instead), so one bad GPU does
    not turn an HGX board into a generic host. Mixed boards are generic, with a problem."""
    problems: list[str] = []
    votes: dict[str | None, list[int]] = {}
    sources = set()
    for gpu in gpus:
        if not gpu.get("readable", True):
            continue
        profile, source, contradiction = gpu_profile(gpu)
        if contradiction:
            problems.append(contradiction)
        votes.setdefault(profile, []).append(int(gpu.get("index") or 0))
        if source:
            sources.add(source)
    if not votes:
        return {"profile": _hardware.GENERIC, "source": "none", "problems": problems}
    ranked = sorted(votes.items(), key=lambda item: -len(item[1]))
    profile, members = ranked[0]
    if len(ranked) > 1:
        others = ", ".join(
            f"GPU {', '.join(map(str, indexes))} ({key or 'no profile'})"
            for key, indexes in ranked[1:]
        )
        problems.append(
            f"GPUs of different parts on one host: most are {profile or 'generic'}; {others}"
        )
        if len(members) * 2 <= sum(len(indexes) for _unused, indexes in ranked):
            profile = None  # no majority
    source = "pci_id" if "pci_id" in sources else "product_name" if sources else "none"
    return {"profile": profile or _hardware.GENERIC, "source": source, "problems": problems}


def hardware_profile(
    gpus: Sequence[Mapping[str, Any]], nvswitch: bool = False, nvlink5: bool = False
) -> str:
    """The detected profile key (see detect_profile); the switch readings do not decide it,
    they are reported beside it and the gates check them against the profile."""
    del nvswitch, nvlink5  # kept for callers of the older signature
    return str(detect_profile(gpus)["profile"])


def nvswitch_board(gpus: Sequence[Mapping[str, Any]]) -> bool:
    """Any readable GPU is a part sold on NVSwitch baseboards (HGX A100, H800, H20, B300...)."""
    return any(
        gpu.get("readable", True) and (part := gpu_part(gpu)) is not None and part.nvswitch_board
        for gpu in gpus
    )


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
    stdout = decode_output(run.stdout)
    if run.rc and not stdout.lstrip().startswith("<"):
        message = _first_line(stdout) or _first_line(decode_output(run.stderr)) or "no output"
        problems.append(f"{run.path} -q -x failed (rc {run.rc}): {message}")
        return None
    try:
        log = parse_nvidia_smi_xml(stdout)
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
    output = f"{decode_output(run.stdout)}\n{decode_output(run.stderr)}"
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
    unreadable = [gpu for gpu in gpus if not gpu["readable"]]
    problems += [f"GPU {gpu['index']} cannot be read: {gpu['read_error']}" for gpu in unreadable]
    nvswitch = nvswitch_present(readings.nvswitch_devices)
    nvlink5 = vpd_has_sw_mng(readings.ib_vpds)
    detected = detect_profile(gpus)
    problems += detected["problems"]
    profile, source, note = detected["profile"], detected["source"], None
    override = readings.profile_override
    if override:
        if override not in _hardware.PROFILE_CHOICES:
            problems.append(
                f"hardware profile override {override!r} is not one of "
                f"{', '.join(_hardware.PROFILE_CHOICES)}; using the detected {profile}"
            )
        else:
            if override != profile and source != "none":
                note = (
                    f"hardware profile {override} set by the inventory; the GPUs read as "
                    f"{profile} (by {source.replace('_', ' ')})"
                )
            profile, source = override, "inventory"
    entry = _hardware.profile(profile)
    return {
        "driver_loaded": readings.proc_version is not None or bool(gpus),
        "kernel_module_version": kernel_version,
        "kernel_module_flavor": module["flavor"] if module else None,
        "kernel_module_arch": module["arch"] if module else None,
        "userspace_driver_version": userspace,
        "driver_versions_match": match,
        "cuda_version": log.get("cuda_version"),
        "gpu_count": len(gpus),
        "attached_gpus": attached,
        "readable_gpu_count": len(gpus) - len(unreadable),
        "unreadable_gpus": [gpu["index"] for gpu in unreadable],
        "gpus": gpus,
        "fabric_state": overall_fabric_state([gpu["fabric_state"] for gpu in gpus]),
        "nvswitch_present": nvswitch,
        "nvswitch_count": sum(1 for name in readings.nvswitch_devices if str(name).strip()),
        "nvlink5_present": nvlink5,
        # A part sold on NVSwitch baseboards (HGX A100, H800, H20, B300...): a hint for hosts
        # whose driver is not loaded yet; nvswitch_present is what the driver found.
        "nvswitch_board": nvswitch_board(gpus),
        "fabric_manager_needed": nvswitch or (entry is not None and entry.fabric_manager),
        "hardware_profile": profile,
        "detected_profile": detected["profile"],
        "profile_source": source,
        "profile_override_note": note,
        "problems": problems,
    }
