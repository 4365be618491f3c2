"""Pure functions behind the gpu_validate role: acceptance gates of a GPU node and its report.

Every gate is evaluated, whatever the others found, and recorded as passed, failed (with a
readable reason) or skipped (with why); the role then fails the host once, listing them all.
Kept free of Ansible so that unit tests call it directly on recorded nvidia-smi fixtures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils import _hardware

# Order of the report; also the names gpu_validate_skip_gates accepts.
GATES = (
    "driver_versions",
    "gpu_count",
    "gpu_model",
    "persistence_mode",
    "ecc",
    "row_remapping",
    "page_retirement",
    "memory_health",
    "recovery_action",
    "fabric",
    "imex",
    "container_cdi",
    "dcgm_diag",
    "nccl_bandwidth",
)
# Profiles whose host runs the NVLink fabric (fabric manager, or NVLSM on NVLink5 boards), and
# those whose GPUs join the rack's fabric through IMEX: both must read Completed.
FABRIC_PROFILES = _hardware.profiles_where("fabric_manager")
IMEX_PROFILES = _hardware.profiles_where("imex")
_FABRIC_NOT_USED = ("N/A", "Not Supported")

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

_AVG_BUS_BW = re.compile(r"Avg bus bandwidth\s*:\s*([0-9]+(?:\.[0-9]+)?)")
_OUT_OF_BOUNDS = re.compile(r"Out of bounds values\s*:\s*(\d+)")
_DOMAIN_STATE = re.compile(r"Domain State\s*:\s*(\S+)", re.I)
_ADDRESS = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b|(\b[0-9a-fA-F]*:[0-9a-fA-F:]+\b)")
_NODE_NOT_READY = re.compile(r"\bNOT[ _]READY\b", re.I)
# A line of `nvidia-smi -L`: "GPU 0: NVIDIA H200 (UUID: GPU-...)".
_LISTED_GPU = re.compile(r"^GPU \d+: .*\(UUID: ([^)]+)\)\s*$")


class GateInputError(ValueError):
    """Bad input to the gates; the message names the variable."""


def _gate(status: str, reason: str) -> dict[str, str]:
    return {"status": status, "reason": reason}


def _gpu_label(gpu: Mapping[str, Any]) -> str:
    return f"GPU {gpu.get('index')} ({gpu.get('pci_bus_id') or gpu.get('uuid') or '?'})"


def _readable(facts: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """GPUs whose readings mean something; the count gate names the others."""
    return [g for g in facts.get("gpus") or [] if g.get("readable", True)]


def _no_gpus(facts: Mapping[str, Any]) -> str:
    problems = "; ".join(facts.get("problems") or []) or "nvidia-smi lists none"
    return f"no GPUs visible: {problems}"


def gate_driver_versions(
    facts: Mapping[str, Any], expected_version: str | None = None
) -> dict[str, str]:
    """Loaded kernel module == userspace driver (== the version the inventory asks for)."""
    kernel = facts.get("kernel_module_version")
    userspace = facts.get("userspace_driver_version")
    if not facts.get("driver_loaded") or kernel is None:
        return _gate(FAILED, "the NVIDIA kernel module is not loaded")
    if userspace is None:
        return _gate(FAILED, f"module {kernel} is loaded but nvidia-smi gives no driver version")
    if facts.get("driver_versions_match") is False or kernel != userspace:
        return _gate(
            FAILED,
            f"loaded kernel module {kernel} differs from userspace driver {userspace}: "
            "reboot to finish the driver change",
        )
    if expected_version and userspace != expected_version:
        return _gate(
            FAILED, f"driver {userspace} is running but nvidia_driver_version is {expected_version}"
        )
    return _gate(PASSED, f"kernel module and userspace driver are both {userspace}")


def gate_gpu_count(facts: Mapping[str, Any], profile: str, expected: int | None) -> dict[str, str]:
    """Every GPU the profile has is listed and readable; a lost GPU fails, named by index."""
    lost = [
        f"{_gpu_label(g)} cannot be read ({g.get('read_error') or 'unreadable'})"
        for g in facts.get("gpus") or []
        if not g.get("readable", True)
    ]
    listed = int(facts.get("gpu_count") or 0)
    attached = facts.get("attached_gpus")
    if attached is not None and int(attached) > listed:
        lost.append(f"nvidia-smi counts {attached} attached GPUs but lists {listed}")
    count = len(_readable(facts))
    if lost:
        return _gate(FAILED, f"{count} readable GPUs: {'; '.join(lost)}")
    if not expected:
        return _gate(SKIPPED, f"no expected GPU count for profile {profile}")
    if count != expected:
        detail = f"; {_no_gpus(facts)}" if count == 0 else ""
        return _gate(FAILED, f"{count} GPUs visible, {profile} expects {expected}{detail}")
    return _gate(PASSED, f"{count} GPUs, as {profile} expects")


def gate_gpu_model(facts: Mapping[str, Any], profile: str, expected: str | None) -> dict[str, str]:
    """Every GPU is the profile's part: by PCI device id where the profile lists ids and the GPU
    reports one, else by the exact model word (an H200 NVL is not an H200)."""
    if not expected:
        return _gate(SKIPPED, f"no expected GPU model for profile {profile}")
    gpus = facts.get("gpus") or []
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    entry = _hardware.profile(profile)
    ids = {f"0x{device:04X}" for device in entry.pci_device_ids} if entry else set()
    # The model as a whole word, not followed by a variant that is another product.
    pattern = re.compile(
        rf"(?<![A-Za-z0-9]){re.escape(expected)}(?![A-Za-z0-9])(?!.*\b(?:PCIe|NVL)\b)", re.I
    )
    wrong = []
    for gpu in gpus:
        device = gpu.get("pci_device_id")
        if not gpu.get("readable", True):
            wrong.append(f"{_gpu_label(gpu)} cannot be read")
        elif ids and device and device != "0x0000":
            if device not in ids:
                wrong.append(f"{_gpu_label(gpu)} is {gpu.get('name')} (PCI device id {device})")
        elif not pattern.search(gpu.get("name") or ""):
            wrong.append(f"{_gpu_label(gpu)} is {gpu.get('name')}")
    if wrong:
        return _gate(FAILED, f"{profile} expects {expected} GPUs: {', '.join(wrong)}")
    return _gate(PASSED, f"every GPU is an {gpus[0].get('name')}")


def gate_persistence_mode(facts: Mapping[str, Any]) -> dict[str, str]:
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    off = [_gpu_label(g) for g in gpus if g.get("persistence_mode") is not True]
    if off:
        return _gate(FAILED, f"persistence mode is off on {', '.join(off)}")
    return _gate(PASSED, f"persistence mode enabled on all {len(gpus)} GPUs")


def gate_ecc(facts: Mapping[str, Any]) -> dict[str, str]:
    """ECC enabled and no volatile uncorrected (double-bit) errors since the last driver load."""
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    problems = []
    for gpu in gpus:
        if gpu.get("ecc_mode") is not True:
            problems.append(f"ECC is off on {_gpu_label(gpu)}")
        volatile = ((gpu.get("ecc_errors") or {}).get("volatile") or {}).get("uncorrected") or 0
        if volatile:
            problems.append(
                f"{_gpu_label(gpu)} has {volatile} volatile uncorrected (DBE) ECC errors"
            )
    if problems:
        return _gate(FAILED, "; ".join(problems))
    return _gate(PASSED, f"ECC on, no volatile uncorrected errors on all {len(gpus)} GPUs")


def gate_row_remapping(facts: Mapping[str, Any]) -> dict[str, str]:
    """No failed row remap, and no remap waiting for a GPU reset."""
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    rows = [(gpu, gpu.get("remapped_rows") or {}) for gpu in gpus]
    if all(r.get("pending") is None and r.get("failure") is None for _unused, r in rows):
        return _gate(SKIPPED, "these GPUs have no row remapper (pre-Ampere)")
    problems = [f"row remapping failed on {_gpu_label(g)}" for g, r in rows if r.get("failure")]
    problems += [
        f"{_gpu_label(g)} has a row remap pending: reset the GPU or reboot"
        for g, r in rows
        if r.get("pending")
    ]
    if problems:
        return _gate(FAILED, "; ".join(problems))
    return _gate(PASSED, "no failed or pending row remaps")


def _fabric_health_problems(gpu: Mapping[str, Any]) -> list[str]:
    health = gpu.get("fabric_health") or {}
    problems = []
    if str(health.get("summary") or "").lower() == "unhealthy":
        problems.append("health summary Unhealthy")
    for flag in ("route_unhealthy", "incorrect_configuration", "access_timeout_recovery"):
        if health.get(flag) is True:
            problems.append(flag)
    if health.get("bandwidth") and str(health["bandwidth"]).lower() not in ("full",):
        problems.append(f"bandwidth {health['bandwidth']}")
    return problems


def gate_fabric(facts: Mapping[str, Any], profile: str) -> dict[str, str]:
    """The NVLink fabric: state Completed and status Success where the profile has a fabric (the
    host's NVSwitches, or the NVL72 rack's), and no unhealthy route on any GPU of a fabric."""
    gpus = _readable(facts)
    needs = profile in FABRIC_PROFILES or profile in IMEX_PROFILES
    on_fabric = [g for g in gpus if g.get("fabric_state") not in _FABRIC_NOT_USED]
    if not needs and not on_fabric and not facts.get("nvswitch_present"):
        return _gate(SKIPPED, f"{profile}: no NVSwitch or NVLink fabric on this host")
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    problems = []
    for gpu in gpus if needs or facts.get("nvswitch_present") else on_fabric:
        state, status = gpu.get("fabric_state"), gpu.get("fabric_status")
        if state != "Completed" or status not in (None, "Success"):
            detail = f" ({status})" if status not in (None, "Success") else ""
            problems.append(f"{_gpu_label(gpu)} is {state}{detail}")
        health = _fabric_health_problems(gpu)
        if health:
            problems.append(f"{_gpu_label(gpu)} fabric {', '.join(health)}")
    if problems:
        where = (
            "check the rack's NVLink switch trays and nvidia-imex"
            if profile in IMEX_PROFILES
            else "check nvidia-fabricmanager (or nvlsm)"
        )
        return _gate(FAILED, f"NVLink fabric not healthy: {'; '.join(problems)}; {where}")
    return _gate(PASSED, f"fabric state Completed and healthy on all {len(gpus)} GPUs")


def gate_page_retirement(facts: Mapping[str, Any]) -> dict[str, str]:
    """No page retirement waiting for a reset (GPUs before Ampere retire pages, later ones remap
    rows: see row_remapping)."""
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    pages = [(g, g.get("retired_pages") or {}) for g in gpus]
    if all(p.get("pending") is None for _unused, p in pages):
        return _gate(SKIPPED, "these GPUs do not retire pages (they remap rows)")
    pending = [
        f"{_gpu_label(g)} has a page retirement pending: reset the GPU or reboot"
        for g, p in pages
        if p.get("pending")
    ]
    if pending:
        return _gate(FAILED, "; ".join(pending))
    return _gate(PASSED, "no page retirement pending")


def gate_memory_health(facts: Mapping[str, Any]) -> dict[str, str]:
    """No memory fault that a reset cannot cure: unrepairable memory, SRAM errors past the
    threshold (both mean the GPU goes back to the vendor)."""
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    health = [(g, g.get("memory_health") or {}) for g in gpus]
    if all(h.get("sram_threshold_exceeded") is None and h.get("unrepairable") is None
           for _unused, h in health):  # fmt: skip
        return _gate(SKIPPED, "nvidia-smi reports no SRAM threshold or unrepairable memory here")
    problems = [
        f"{_gpu_label(g)} has unrepairable memory ({h.get('unrepairable_reason')})"
        for g, h in health
        if h.get("unrepairable")
    ]
    problems += [
        f"{_gpu_label(g)} exceeded the SRAM uncorrectable error threshold"
        for g, h in health
        if h.get("sram_threshold_exceeded")
    ]
    if problems:
        return _gate(FAILED, "; ".join(problems) + ": the GPU needs replacing (RMA)")
    return _gate(PASSED, "no unrepairable memory, SRAM errors under the threshold")


def gate_recovery_action(facts: Mapping[str, Any]) -> dict[str, str]:
    """The driver asks for no recovery action (reset, reboot, drain and reset)."""
    gpus = _readable(facts)
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    actions = [(g, g.get("recovery_action")) for g in gpus]
    if all(action is None for _unused, action in actions):
        return _gate(SKIPPED, "this driver reports no GPU recovery action")
    asked = [
        f"{_gpu_label(g)} asks for {action}"
        for g, action in actions
        if action is not None and str(action).lower() != "none"
    ]
    if asked:
        return _gate(FAILED, "; ".join(asked))
    return _gate(PASSED, f"no recovery action asked on all {len(gpus)} GPUs")


def parse_imex_nodes(output: str) -> tuple[str | None, dict[str, bool]]:
    """Domain state and node address -> ready, from `nvidia-imex-ctl -N` output."""
    state = _DOMAIN_STATE.search(output or "")
    nodes: dict[str, bool] = {}
    for line in (output or "").splitlines():
        if not line.strip().startswith("Node"):
            continue
        address = _ADDRESS.search(line)
        if not address:
            continue
        ready = bool(re.search(r"\bREADY\b", line)) and not _NODE_NOT_READY.search(line)
        nodes[address.group(0)] = ready
    return (state.group(1).upper() if state else None), nodes


def gate_imex(profile: str, imex: Mapping[str, Any] | None) -> dict[str, str]:
    if profile not in IMEX_PROFILES:
        return _gate(SKIPPED, f"{profile}: IMEX runs only on GB200 NVL72 compute trays")
    if not imex:
        return _gate(FAILED, "the IMEX state was not read")
    problems = []
    if imex.get("service") != "active":
        problems.append(f"service nvidia-imex is {imex.get('service') or 'unknown'}")
    state, nodes = parse_imex_nodes(str(imex.get("output") or ""))
    if state != "UP":
        problems.append(f"IMEX domain state is {state or 'unknown'} (nvidia-imex-ctl -N)")
    for node in imex.get("expected_nodes") or []:
        if node not in nodes:
            problems.append(f"node {node} of the rack is missing from the IMEX domain")
        elif not nodes[node]:
            problems.append(f"IMEX node {node} is not READY")
    problems += [f"IMEX node {n} is not READY" for n, ok in nodes.items()
                 if not ok and n not in (imex.get("expected_nodes") or [])]  # fmt: skip
    if problems:
        return _gate(FAILED, "; ".join(problems))
    return _gate(PASSED, f"IMEX domain UP with {len(nodes)} READY nodes")


def gate_container_cdi(
    facts: Mapping[str, Any], container: Mapping[str, Any] | None
) -> dict[str, str]:
    if not container:
        return _gate(SKIPPED, "no container engine check was run")
    if container.get("skip_reason"):
        return _gate(SKIPPED, str(container["skip_reason"]))
    engine = container.get("engine") or "container engine"
    if container.get("rc") != 0:
        error = (
            str(container.get("stderr") or container.get("stdout") or "").strip().splitlines()
            or ["no output"]
        )[-1]
        return _gate(
            FAILED,
            f"{engine} could not run the CDI test container (rc {container.get('rc')}): {error}",
        )
    # NVIDIA's own check: nvidia-smi -L in a container given every GPU through CDI.
    listed = {
        m.group(1)
        for line in str(container.get("stdout") or "").splitlines()
        if (m := _LISTED_GPU.match(line.strip()))
    }
    count = int(facts.get("gpu_count") or 0)
    if len(listed) != count or count == 0:
        missing = [
            str(gpu.get("index", number))
            for number, gpu in enumerate(facts.get("gpus") or [])
            if isinstance(gpu, Mapping) and gpu.get("uuid") and gpu["uuid"] not in listed
        ]
        detail = f" (missing GPU {', '.join(missing)})" if missing and listed else ""
        return _gate(
            FAILED,
            f"nvidia-smi -L in a {engine} container given nvidia.com/gpu=all lists {len(listed)} "
            f"GPUs, the host has {count}{detail}",
        )
    return _gate(
        PASSED,
        f"nvidia-smi -L in a {engine} container given nvidia.com/gpu=all lists all {count} GPUs",
    )


def gate_dcgm_diag(diag: Mapping[str, Any] | None) -> dict[str, str]:
    if not diag:
        return _gate(SKIPPED, "disabled (gpu_validate_dcgm_diag)")
    output = str(diag.get("stdout") or "")
    failed = [
        " ".join(line.replace("|", " ").split())
        for line in output.splitlines()
        if re.search(r"\|\s*Fail", line, re.I)
    ]
    if diag.get("rc") != 0 or failed:
        detail = (
            "; ".join(failed)
            or (str(diag.get("stderr") or output).strip().splitlines() or ["no output"])[-1]
        )
        return _gate(
            FAILED, f"dcgmi diag -r {diag.get('level')} failed (rc {diag.get('rc')}): {detail}"
        )
    return _gate(PASSED, f"dcgmi diag -r {diag.get('level')} passed")


def parse_nccl_bus_bandwidth(output: str) -> float | None:
    """Average bus bandwidth (GB/s) from nccl-tests output, None when absent."""
    match = _AVG_BUS_BW.search(output or "")
    return float(match.group(1)) if match else None


def gate_nccl_bandwidth(nccl: Mapping[str, Any] | None) -> dict[str, str]:
    if not nccl:
        return _gate(SKIPPED, "disabled (gpu_validate_nccl_tests)")
    output = str(nccl.get("stdout") or "")
    threshold = float(nccl.get("threshold_gbps") or 0)
    if nccl.get("rc") != 0:
        last = (str(nccl.get("stderr") or output).strip().splitlines() or ["no output"])[-1]
        return _gate(FAILED, f"all_reduce_perf failed (rc {nccl.get('rc')}): {last}")
    wrong = _OUT_OF_BOUNDS.search(output)
    if wrong and int(wrong.group(1)) > 0:
        return _gate(
            FAILED, f"all_reduce_perf found {wrong.group(1)} out-of-bounds values (data corruption)"
        )
    bandwidth = parse_nccl_bus_bandwidth(output)
    if bandwidth is None:
        return _gate(FAILED, "all_reduce_perf printed no 'Avg bus bandwidth'")
    if bandwidth < threshold:
        return _gate(
            FAILED,
            f"all_reduce_perf average bus bandwidth {bandwidth:g} GB/s is below {threshold:g} GB/s",
        )
    return _gate(
        PASSED, f"all_reduce_perf average bus bandwidth {bandwidth:g} GB/s >= {threshold:g} GB/s"
    )


def check_skip(skip: Iterable[str] | None, variable: str = "gpu_validate_skip_gates") -> list[str]:
    names = list(skip or [])
    unknown = [name for name in names if name not in GATES]
    if unknown:
        raise GateInputError(
            f"{variable}: unknown gate(s) {', '.join(map(str, unknown))}; "
            f"gates are {', '.join(GATES)}"
        )
    return names


def gpu_gates(
    facts: Mapping[str, Any],
    profile: str,
    *,
    host: str = "",
    expected_gpu_count: int | None = None,
    expected_model: str | None = None,
    expected_driver_version: str | None = None,
    imex: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    dcgm_diag: Mapping[str, Any] | None = None,
    nccl: Mapping[str, Any] | None = None,
    skip: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The validation report of one host: every gate with its status and reason."""
    skipped = set(check_skip(skip))
    requested = bool(profile)
    profile = profile or str(facts.get("hardware_profile") or _hardware.GENERIC)
    evaluate = {
        "driver_versions": lambda: gate_driver_versions(facts, expected_driver_version),
        "gpu_count": lambda: gate_gpu_count(facts, profile, expected_gpu_count),
        "gpu_model": lambda: gate_gpu_model(facts, profile, expected_model),
        "persistence_mode": lambda: gate_persistence_mode(facts),
        "ecc": lambda: gate_ecc(facts),
        "row_remapping": lambda: gate_row_remapping(facts),
        "page_retirement": lambda: gate_page_retirement(facts),
        "memory_health": lambda: gate_memory_health(facts),
        "recovery_action": lambda: gate_recovery_action(facts),
        "fabric": lambda: gate_fabric(facts, profile),
        "imex": lambda: gate_imex(profile, imex),
        "container_cdi": lambda: gate_container_cdi(facts, container),
        "dcgm_diag": lambda: gate_dcgm_diag(dcgm_diag),
        "nccl_bandwidth": lambda: gate_nccl_bandwidth(nccl),
    }
    gates = {
        name: _gate(SKIPPED, "skipped by gpu_validate_skip_gates")
        if name in skipped
        else evaluate[name]()
        for name in GATES
    }
    failures = [
        f"{name}: {gate['reason']}" for name, gate in gates.items() if gate["status"] == FAILED
    ]
    counts = {
        status: sum(g["status"] == status for g in gates.values())
        for status in (PASSED, FAILED, SKIPPED)
    }
    return {
        "host": host,
        "profile": profile,
        "passed": not failures,
        "summary": f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped",
        "driver": {
            "kernel_module": facts.get("kernel_module_version"),
            "userspace": facts.get("userspace_driver_version"),
            "cuda": facts.get("cuda_version"),
        },
        "gpu_count": int(facts.get("gpu_count") or 0),
        "profile_source": "gpu_validate_profile" if requested else facts.get("profile_source"),
        "gpus": [
            {
                "index": g.get("index"),
                "uuid": g.get("uuid"),
                "name": g.get("name"),
                "pci_bus_id": g.get("pci_bus_id"),
                "pci_device_id": g.get("pci_device_id"),
                "readable": g.get("readable", True),
            }
            for g in facts.get("gpus") or []
        ],
        "gates": gates,
        "failures": failures,
    }


def profile_check(facts: Mapping[str, Any], inventory_profile: str) -> dict[str, Any]:
    """Whether the inventory's profile fits the GPUs read, with advice that names the real
    cause: a GPU that cannot be read is a hardware fault, not a wrong inventory group."""
    detected = str(facts.get("detected_profile") or facts.get("hardware_profile") or "")
    host_gpus: Sequence[Mapping[str, Any]] = facts.get("gpus") or []
    lost = [str(g.get("index")) for g in host_gpus if not g.get("readable", True)]
    if not inventory_profile or not host_gpus or inventory_profile == detected:
        message = ""
        if lost:
            message = (
                f"GPU {', '.join(lost)} cannot be read: a hardware fault (reseat, reset or "
                "replace the GPU); gpu_validate's gpu_count gate fails until it is fixed"
            )
        return {"ok": True, "detected": detected, "message": message}
    names = sorted({str(g.get("name")) for g in host_gpus if g.get("readable", True)})
    ids = sorted(
        {
            str(g["pci_device_id"])
            for g in host_gpus
            if g.get("readable", True) and g.get("pci_device_id")
        }
    )
    source = str(facts.get("profile_source") or "").replace("_", " ")
    message = (
        f"the inventory sets {inventory_profile} but the GPUs are detected as {detected} "
        f"({len(host_gpus)} x {', '.join(names) or '?'}"
        + (f", PCI device id {', '.join(ids)}" if ids else "")
        + (f", by {source}" if source else "")
        + "): fix the host's inventory group, or keep the inventory's profile with gpu_facts' "
        "profile override"
    )
    return {"ok": False, "detected": detected, "message": message}
