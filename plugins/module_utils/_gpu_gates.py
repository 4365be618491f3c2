"""Pure functions behind the gpu_validate role: acceptance gates of a GPU node and its report.

Every gate is evaluated, whatever the others found, and recorded as passed, failed (with a
readable reason) or skipped (with why); the role then fails the host once, listing them all.
Kept free of Ansible so that unit tests call it directly on recorded nvidia-smi fixtures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Order of the report; also the names gpu_validate_skip_gates accepts.
GATES = (
    "driver_versions",
    "gpu_count",
    "gpu_model",
    "persistence_mode",
    "ecc",
    "row_remapping",
    "fabric",
    "imex",
    "container_cdi",
    "dcgm_diag",
    "nccl_bandwidth",
)
# Profiles whose host runs the NVLink fabric (fabric manager, or NVLSM on NVLink5 boards).
FABRIC_PROFILES = ("h100_hgx", "h200_hgx", "b200_hgx")
IMEX_PROFILES = ("gb200_nvl72",)

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

_AVG_BUS_BW = re.compile(r"Avg bus bandwidth\s*:\s*([0-9]+(?:\.[0-9]+)?)")
_OUT_OF_BOUNDS = re.compile(r"Out of bounds values\s*:\s*(\d+)")
_DOMAIN_STATE = re.compile(r"Domain State\s*:\s*(\S+)", re.I)
_ADDRESS = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b|(\b[0-9a-fA-F]*:[0-9a-fA-F:]+\b)")
_NODE_NOT_READY = re.compile(r"\bNOT[ _]READY\b", re.I)
_DEVICE_NODE = re.compile(r"^(?:/dev/)?nvidia(\d+)$")


class GateInputError(ValueError):
    """Bad input to the gates; the message names the variable."""


def _gate(status: str, reason: str) -> dict[str, str]:
    return {"status": status, "reason": reason}


def _gpu_label(gpu: Mapping[str, Any]) -> str:
    return f"GPU {gpu.get('index')} ({gpu.get('pci_bus_id') or gpu.get('uuid') or '?'})"


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
    if not expected:
        return _gate(SKIPPED, f"no expected GPU count for profile {profile}")
    count = int(facts.get("gpu_count") or 0)
    if count != expected:
        detail = f"; {_no_gpus(facts)}" if count == 0 else ""
        return _gate(FAILED, f"{count} GPUs visible, {profile} expects {expected}{detail}")
    return _gate(PASSED, f"{count} GPUs, as {profile} expects")


def gate_gpu_model(facts: Mapping[str, Any], profile: str, expected: str | None) -> dict[str, str]:
    if not expected:
        return _gate(SKIPPED, f"no expected GPU model for profile {profile}")
    gpus = facts.get("gpus") or []
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(expected)}(?![A-Za-z0-9])", re.I)
    wrong = [
        f"{_gpu_label(g)} is {g.get('name')}"
        for g in gpus
        if not pattern.search(g.get("name") or "")
    ]
    if wrong:
        return _gate(FAILED, f"{profile} expects {expected} GPUs: {', '.join(wrong)}")
    return _gate(PASSED, f"every GPU is an {gpus[0].get('name')}")


def gate_persistence_mode(facts: Mapping[str, Any]) -> dict[str, str]:
    gpus = facts.get("gpus") or []
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    off = [_gpu_label(g) for g in gpus if g.get("persistence_mode") is not True]
    if off:
        return _gate(FAILED, f"persistence mode is off on {', '.join(off)}")
    return _gate(PASSED, f"persistence mode enabled on all {len(gpus)} GPUs")


def gate_ecc(facts: Mapping[str, Any]) -> dict[str, str]:
    """ECC enabled and no volatile uncorrected (double-bit) errors since the last driver load."""
    gpus = facts.get("gpus") or []
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
    gpus = facts.get("gpus") or []
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    rows = [(gpu, gpu.get("remapped_rows") or {}) for gpu in gpus]
    if all(r.get("pending") is None and r.get("failure") is None for _, r in rows):
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


def gate_fabric(facts: Mapping[str, Any], profile: str) -> dict[str, str]:
    if profile not in FABRIC_PROFILES:
        why = (
            "the rack's NVLink switch trays run the fabric, not this host"
            if profile in IMEX_PROFILES
            else "no NVSwitch or NVLink5 fabric on this profile"
        )
        return _gate(SKIPPED, f"{profile}: {why}")
    gpus = facts.get("gpus") or []
    if not gpus:
        return _gate(FAILED, _no_gpus(facts))
    stuck = [
        f"{_gpu_label(g)} is {g.get('fabric_state')}"
        + (
            f" ({g.get('fabric_status')})"
            if g.get("fabric_status") not in (None, "Success")
            else ""
        )
        for g in gpus
        if g.get("fabric_state") != "Completed" or g.get("fabric_status") not in (None, "Success")
    ]
    if stuck:
        return _gate(
            FAILED,
            f"NVLink fabric not Completed: {', '.join(stuck)}; "
            "check nvidia-fabricmanager (or nvlsm)",
        )
    return _gate(PASSED, f"fabric state Completed on all {len(gpus)} GPUs")


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
    seen = sorted(
        {
            int(m.group(1))
            for line in str(container.get("stdout") or "").split()
            if (m := _DEVICE_NODE.match(line.strip()))
        }
    )
    count = int(facts.get("gpu_count") or 0)
    if len(seen) != count or count == 0:
        return _gate(
            FAILED,
            f"a {engine} container given nvidia.com/gpu=all sees {len(seen)} /dev/nvidiaN devices, "
            f"the host has {count} GPUs",
        )
    return _gate(PASSED, f"a {engine} container sees all {count} GPUs through CDI")


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
    profile = profile or str(facts.get("hardware_profile") or "generic")
    evaluate = {
        "driver_versions": lambda: gate_driver_versions(facts, expected_driver_version),
        "gpu_count": lambda: gate_gpu_count(facts, profile, expected_gpu_count),
        "gpu_model": lambda: gate_gpu_model(facts, profile, expected_model),
        "persistence_mode": lambda: gate_persistence_mode(facts),
        "ecc": lambda: gate_ecc(facts),
        "row_remapping": lambda: gate_row_remapping(facts),
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
        "gpus": [
            {
                "index": g.get("index"),
                "uuid": g.get("uuid"),
                "name": g.get("name"),
                "pci_bus_id": g.get("pci_bus_id"),
            }
            for g in facts.get("gpus") or []
        ],
        "gates": gates,
        "failures": failures,
    }
