"""Bad CUDA, NCCL and container runtime input fails in the validation play, naming the variable.

Runs playbooks/validate_input.yml controller-side, like test_gpu_input_validation.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from validation_errors import assert_each_host_reports_its_case, gpu_site, one_host_per_case

GOOD = {
    "nvidia_driver_profile": "h200_hgx",
    "nvidia_driver_branch": 580,
    "nvidia_driver_version": "580.126.09",
    "cuda_toolkit_version": "13.0",
    "cuda_toolkit_package_version": "13.0.88-1",
    "nccl_version": "2.28.7-1+cuda13.0",
    "container_runtime_engine": "docker",
    "container_runtime_nvidia_toolkit_version": "1.17.8-1",
}


def run_validation(
    validate_input: Callable[[dict], subprocess.CompletedProcess[str]], gpu_vars: dict
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {"hosts": {"h200-1": gpu_vars}},
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }
    return validate_input(inventory)


def test_good_gpu_userspace_input_passes(validate_input):
    result = run_validation(
        validate_input,
        {
            **GOOD,
            "container_runtime_nvidia_repo_base_url": "file:///srv/mirror/libnvidia-container/stable",
            "container_runtime_nvidia_repo_key_url": "file:///srv/mirror/key.asc",
            "cuda_toolkit_repo_url": "https://mirror.example.internal/cuda/debian12/x86_64/",
            "cuda_toolkit_repo_key_url": "https://mirror.example.internal/cuda/key.asc",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "CUDA newer than the driver branch": (
        {"nvidia_driver_branch": 570, "nvidia_driver_version": "570.133.20"},
        [
            "cuda_toolkit_version 13.0 needs driver branch 580 or newer",
            "nvidia_driver_branch is 570",
        ],
    ),
    "CUDA release unknown": (
        {"cuda_toolkit_version": "12.7", "cuda_toolkit_package_version": "12.7.1-1"},
        ["cuda_toolkit_version 12.7 is not a CUDA release"],
    ),
    "toolkit package version not exact": (
        {"cuda_toolkit_package_version": "13.0"},
        ["cuda_toolkit_package_version must be a package version x.y.z or x.y.z-n"],
    ),
    "toolkit package version of another release": (
        {"cuda_toolkit_package_version": "12.8.93-1"},
        ["cuda_toolkit_package_version 12.8.93-1 is not of cuda_toolkit_version 13.0"],
    ),
    "toolkit mirror without key": (
        {"cuda_toolkit_repo_url": "https://mirror.example.internal/cuda/debian12/x86_64/"},
        ["cuda_toolkit_repo_key_url must be set", "mirror.example.internal"],
    ),
    "NCCL built for another CUDA major": (
        {"nccl_version": "2.27.7-1+cuda12.9"},
        ["nccl_version 2.27.7-1+cuda12.9 is built for CUDA 12", "cuda_toolkit_version is 13.0"],
    ),
    "nccl-tests without checksum": (
        {
            "nccl_tests_enabled": True,
            "nccl_tests_url": "https://mirror.example.internal/nccl-tests.tar.gz",
        },
        ["nccl_tests_checksum must be 'sha256:'"],
    ),
    "runtime neither docker nor podman": (
        {"container_runtime_engine": "cri-o"},
        ["container_runtime_engine", "cri-o"],
    ),
    "container toolkit version not exact": (
        {"container_runtime_nvidia_toolkit_version": "1.17"},
        ["container_runtime_nvidia_toolkit_version must be a package version x.y.z or x.y.z-n"],
    ),
    "libnvidia-container mirror without key": (
        {
            "container_runtime_nvidia_repo_base_url": "http://mirror.example.internal/libnvidia-container/stable"
        },
        ["container_runtime_nvidia_repo_key_url must be set", "mirror.example.internal"],
    ),
    "docker-ce mirror without key": (
        {
            "container_runtime_docker_source": "docker_ce",
            "container_runtime_docker_ce_repo_url": "https://mirror.example.internal/docker-ce/debian",
        },
        ["container_runtime_docker_ce_key_url must be set", "mirror.example.internal"],
    ),
    "default runtime asked of podman": (
        {"container_runtime_engine": "podman", "container_runtime_nvidia_default_runtime": True},
        ["container_runtime_nvidia_default_runtime applies to docker and containerd"],
    ),
}


def test_every_bad_gpu_userspace_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One GPU node per case, as an inventory with many mistakes is reported in one pass."""
    prefix = "h200-"
    nodes = one_host_per_case(BAD_INPUT, prefix, GOOD)
    output = assert_rejected(validate_input(gpu_site(nodes)), [], "several bad GPU nodes")
    # any_errors_fatal: nothing runs after validation, on any host.
    assert "monitoring-1" in output
    assert_each_host_reports_its_case(output, BAD_INPUT, prefix)
