"""Pure functions behind the cuda_toolkit, nccl and container_runtime roles.

Kept free of Ansible so that unit tests call them directly: package version rules, the
container toolkit package set and CDI mode, and the merge of docker's daemon.json.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils._nvidia_stack import (
    StackInputError,
    parse_cuda,
)

ENGINES = ("docker", "podman")
# nvidia-container-toolkit ships nvidia-cdi-refresh.path/.service from this release on.
CDI_REFRESH_FROM = (1, 18)
# Docker reads CDI specs (features.cdi) from 25.0 on.
DOCKER_CDI_FROM = 25
# Podman resolves CDI device names (--device nvidia.com/gpu=all) from 4.1 on.
PODMAN_CDI_FROM = (4, 1)
# The packages of the NVIDIA container toolkit, which must all be at one version.
CONTAINER_TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)

_PACKAGE_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-\d+)?$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def cuda_package_version(
    package_version: Any, cuda_version: Any, variable: str = "cuda_toolkit_package_version"
) -> str:
    """The exact cuda-toolkit-X-Y version (x.y.z or x.y.z-n) must be of the CUDA release."""
    major, minor = parse_cuda(cuda_version)
    match = _PACKAGE_VERSION.match(str(package_version))
    if not match:
        raise StackInputError(
            f"{variable} must be a package version x.y.z or x.y.z-n such as 13.0.88-1, "
            f"got {package_version!r}"
        )
    if (int(match.group(1)), int(match.group(2))) != (major, minor):
        raise StackInputError(
            f"{variable} {package_version} is not of cuda_toolkit_version {cuda_version}: "
            f"it must start with '{major}.{minor}.'"
        )
    return str(package_version)


def container_toolkit_plan(
    version: Any, variable: str = "container_runtime_nvidia_toolkit_version"
) -> dict[str, Any]:
    """Pinned packages of the NVIDIA container toolkit and how its CDI spec is made."""
    match = _PACKAGE_VERSION.match(str(version))
    if not match:
        raise StackInputError(
            f"{variable} must be a package version x.y.z or x.y.z-n such as 1.17.8-1, "
            f"got {version!r}"
        )
    full = str(version) if match.group(4) else f"{version}-1"
    refresh = (int(match.group(1)), int(match.group(2))) >= CDI_REFRESH_FROM
    return {
        "version": full,
        "packages": dict.fromkeys(CONTAINER_TOOLKIT_PACKAGES, full),
        "apt": [f"{name}={full}" for name in CONTAINER_TOOLKIT_PACKAGES],
        "held": sorted(CONTAINER_TOOLKIT_PACKAGES),
        "cdi_mode": "refresh" if refresh else "static",
    }


def upstream_version(package_version: Any) -> tuple[int, ...]:
    """Numeric release of a distribution package version: '5:27.3.1-1~debian.12' -> (27, 3, 1)."""
    text = str(package_version).split(":", 1)[-1]
    match = re.match(r"^(\d+(?:\.\d+)*)", text)
    if not match:
        raise StackInputError(f"cannot read a version number from {package_version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def cdi_supported(engine: str, engine_version: Any) -> bool:
    """Whether the engine resolves CDI device names (docker >= 25, podman >= 4.1)."""
    if engine not in ENGINES:
        raise StackInputError(
            f"container_runtime_engine must be one of {', '.join(ENGINES)}, got {engine!r}"
        )
    version = upstream_version(engine_version)
    if engine == "docker":
        return version[0] >= DOCKER_CDI_FROM
    return version[:2] >= PODMAN_CDI_FROM


def archive_checksum(checksum: Any, variable: str) -> str:
    """A source archive is only used with a sha256 checksum: 'sha256:<64 hex>'."""
    if not _SHA256.match(str(checksum)):
        raise StackInputError(
            f"{variable} must be 'sha256:' followed by 64 lowercase hex digits, got {checksum!r}"
        )
    return str(checksum)
