"""Pure functions behind the GPU host stack roles: package sets, repository paths, versions.

Kept free of Ansible so that unit tests call them directly (the sbsa path, branch rules and
CUDA/driver compatibility are tested here, since test hosts are x86_64).
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils import _hardware

# All from the hardware table (_hardware).
PROFILES = _hardware.PROFILE_CHOICES
# Profiles whose GPUs sit behind NVSwitches managed by the host's fabric manager.
NVSWITCH_PROFILES = _hardware.profiles_where("fabric_manager")
# Blackwell and Grace need the open kernel modules.
OPEN_ONLY_PROFILES = _hardware.profiles_where("open_modules_only")
NVLSM_PROFILES = _hardware.profiles_where("nvlsm")
IMEX_PROFILES = _hardware.profiles_where("imex")
# From branch 580 on, fabric manager, nscq and IMEX packages drop the branch suffix.
UNVERSIONED_NAMES_FROM = 580

# Oldest driver branch each CUDA minor release needs (CUDA release notes, table 3).
CUDA_MIN_DRIVER_BRANCH = {
    (12, 0): 525,
    (12, 1): 530,
    (12, 2): 535,
    (12, 3): 545,
    (12, 4): 550,
    (12, 5): 555,
    (12, 6): 560,
    (12, 8): 570,
    (12, 9): 575,
    (13, 0): 580,
    (13, 1): 590,
}

_VERSION = re.compile(r"^(\d{3})\.\d{2,3}(\.\d{2,3})?$")


class StackInputError(ValueError):
    """Bad input; the message names the variable."""


def repo_arch(machine: str) -> str:
    """Directory of NVIDIA's CUDA repository for a CPU architecture: servers on Arm use sbsa."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}.get(machine)
    if arch is None:
        raise StackInputError(f"architecture {machine!r} has no NVIDIA CUDA repository")
    return arch


def repo_distro(distribution: str, version: str) -> str:
    """CUDA repository directory name for an OS release, e.g. ubuntu2404, debian12."""
    major = str(version).split(".", maxsplit=1)[0]
    name = distribution.lower()
    if name == "ubuntu":
        return "ubuntu" + str(version).replace(".", "")[:4]
    if name == "debian":
        return f"debian{major}"
    raise StackInputError(f"{distribution} {version} has no NVIDIA CUDA repository")


def cuda_repo_url(base_url: str, distro: str, machine: str) -> str:
    """URL of the flat CUDA repository: <base>/<distro>/<x86_64|sbsa>/."""
    return f"{base_url.rstrip('/')}/{distro}/{repo_arch(machine)}/"


def check_driver(branch: Any, version: Any, variable: str = "nvidia_driver_version") -> int:
    """Return the branch as an int; the version must be a full driver version of that branch."""
    match = _VERSION.match(str(version))
    if not match:
        raise StackInputError(
            f"{variable} must be a full driver version such as 580.126.09, got {version!r}"
        )
    if str(branch) != match.group(1):
        raise StackInputError(
            f"{variable} {version} is not of nvidia_driver_branch {branch}: "
            f"the version must start with '{branch}.'"
        )
    return int(match.group(1))


def _suffixed(name: str, branch: int) -> str:
    return name if branch >= UNVERSIONED_NAMES_FROM else f"{name}-{branch}"


def driver_plan(
    profile: str,
    branch: Any,
    version: str,
    open_modules: bool = True,
    nvlsm_version: str = "",
    gb200_tuning: bool = False,
    nvswitch: bool = False,
) -> dict[str, Any]:
    """Packages (name -> apt version glob), services, modprobe options and kernel arguments.

    `nvswitch`: the host has NVSwitches (onprem_gpu.nvswitch_present), so fabric manager is
    planned even on a board without a profile (HGX A100, H800, H20...)."""
    if profile not in PROFILES:
        raise StackInputError(
            f"nvidia_driver_profile must be one of {', '.join(PROFILES)}, got {profile!r}"
        )
    number = check_driver(branch, version)
    if not open_modules and profile in OPEN_ONLY_PROFILES:
        raise StackInputError(
            f"nvidia_driver_open_modules must be true on {profile}: Blackwell and Grace "
            "need the open kernel modules"
        )
    pinned = f"{version}-*"
    flavor = "-open" if open_modules else ""
    packages = {
        f"nvidia-driver-{number}{flavor}": pinned,
        "nvidia-modprobe": pinned,
        "nvidia-persistenced": pinned,
        _suffixed("libnvidia-nscq", number): pinned,
    }
    services = ["nvidia-persistenced"]
    modprobe = {"nvidia": ["NVreg_OpenRmEnableUnsupportedGpus=0"] if open_modules else []}
    modules_load: list[str] = []
    kernel_args: list[str] = []
    if profile in NVSWITCH_PROFILES or (nvswitch and profile not in IMEX_PROFILES):
        packages[_suffixed("nvidia-fabricmanager", number)] = pinned
        services.append("nvidia-fabricmanager")
    if profile in NVLSM_PROFILES:
        packages["libnvsdm"] = pinned
        if not nvlsm_version:
            raise StackInputError(f"nvidia_driver_nvlsm_version is required on {profile} (NVLink5)")
        packages["nvlsm"] = f"{nvlsm_version}-*"
        packages["infiniband-diags"] = ""
        modules_load += ["mlx5_core", "ib_umad"]
    if profile in IMEX_PROFILES:
        packages[_suffixed("nvidia-imex", number)] = pinned
        services.append("nvidia-imex")
        modprobe["nvidia"].append("NVreg_CreateImexChannel0=1")
        if gb200_tuning:
            kernel_args = ["iommu.passthrough=1", "init_on_alloc=0", "numa_balancing=disable"]
    return {
        "packages": packages,
        "held": sorted(name for name, pin in packages.items() if pin),
        # apt requests: name=VERSION-*
        "apt": [f"{name}={pin}" if pin else name for name, pin in packages.items()],
        "services": services,
        "modprobe": {key: value for key, value in modprobe.items() if value},
        "modules_load": modules_load,
        "kernel_args": kernel_args,
    }


def parse_cuda(version: Any, variable: str = "cuda_toolkit_version") -> tuple[int, int]:
    match = re.match(r"^(\d+)\.(\d+)$", str(version))
    if not match:
        raise StackInputError(f"{variable} must be MAJOR.MINOR such as 12.8, got {version!r}")
    return int(match.group(1)), int(match.group(2))


def check_cuda(
    cuda_version: Any, driver_branch: Any, variable: str = "cuda_toolkit_version"
) -> dict[str, Any]:
    """CUDA toolkit package names for a version, failing when the driver branch is too old."""
    major, minor = parse_cuda(cuda_version, variable)
    needed = CUDA_MIN_DRIVER_BRANCH.get((major, minor))
    if needed is None:
        raise StackInputError(
            f"{variable} {cuda_version} is not a CUDA release this collection knows "
            f"({', '.join(f'{a}.{b}' for a, b in CUDA_MIN_DRIVER_BRANCH)})"
        )
    if int(driver_branch) < needed:
        raise StackInputError(
            f"{variable} {cuda_version} needs driver branch {needed} or newer, "
            f"nvidia_driver_branch is {driver_branch}"
        )
    return {
        "major": major,
        "minor": minor,
        "package": f"cuda-toolkit-{major}-{minor}",
        "home": f"/usr/local/cuda-{major}.{minor}",
        "dcgm_variant": f"cuda{major}",
    }


def check_nccl(nccl_version: Any, cuda_version: Any, variable: str = "nccl_version") -> str:
    """The NCCL package version must be built for the CUDA major of the toolkit."""
    major, _unused = parse_cuda(cuda_version)
    match = re.match(r"^\d+\.\d+\.\d+-\d+\+cuda(\d+)\.(\d+)$", str(nccl_version))
    if not match:
        raise StackInputError(
            f"{variable} must be a package version such as 2.27.7-1+cuda12.9, got {nccl_version!r}"
        )
    if int(match.group(1)) != major:
        raise StackInputError(
            f"{variable} {nccl_version} is built for CUDA {match.group(1)}, "
            f"cuda_toolkit_version is {cuda_version}"
        )
    return str(nccl_version)


def imex_nodes(
    rack_group: str, groups: dict[str, list[str]], hostvars: Any, host: str
) -> list[str]:
    """IMEX node list of a rack: one address per compute tray of its inventory group."""
    if not rack_group:
        raise StackInputError(
            "nvidia_driver_imex_rack_group must name the rack's inventory group on gb200_nvl72"
        )
    members = groups.get(rack_group)
    if members is None:
        raise StackInputError(
            f"nvidia_driver_imex_rack_group {rack_group!r} is not an inventory group"
        )
    if host not in members:
        raise StackInputError(
            f"nvidia_driver_imex_rack_group {rack_group!r} does not contain {host}: "
            "a tray must be in its own rack's IMEX domain"
        )
    addresses = []
    for member in members:
        variables = hostvars[member] if hostvars is not None else {}
        address = (
            variables.get("nvidia_driver_imex_address") or variables.get("ansible_host") or member
        )
        addresses.append(str(address))
    return addresses
