"""Bad GPU host stack input fails in the validation play before any change, naming the variable.

Runs playbooks/validate_input.yml controller-side (no connection), as test_input_validation.py does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

H200_VARS = {"nvidia_driver_profile": "h200_hgx"}
GB200_VARS = {
    "nvidia_driver_profile": "gb200_nvl72",
    "nvidia_driver_imex_rack_group": "nvl72_rack01",
}


def run_validation(
    validate_input: Callable[[dict], subprocess.CompletedProcess[str]],
    h200_vars: dict,
    gb200_vars: dict | None = None,
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {
                    "children": {
                        "hgx_h200": {"hosts": {"h200-1": h200_vars}},
                        "nvl72_rack01": {
                            "hosts": {
                                "tray-1": {
                                    "ansible_host": "10.20.2.101",
                                    **(gb200_vars or GB200_VARS),
                                },
                                "tray-2": {"ansible_host": "10.20.2.102", **GB200_VARS},
                            }
                        },
                    }
                },
                "nvl72_rack02": {"hosts": {"tray-9": {}}},
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }
    return validate_input(inventory)


def test_good_gpu_input_passes(validate_input):
    result = run_validation(validate_input, H200_VARS)
    assert result.returncode == 0, result.stdout + result.stderr


DETECTED_GB200 = {
    "onprem_gpu": {
        "gpu_count": 4,
        "hardware_profile": "gb200_nvl72",
        "gpus": [{"name": "NVIDIA GB200"}],
    }
}

BAD_INPUT = {
    "unknown profile": (
        {"nvidia_driver_profile": "h300_hgx"},
        None,
        ["nvidia_driver_profile", "h300_hgx"],
    ),
    "profile contradicting detected hardware": (
        DETECTED_GB200,
        None,
        ["nvidia_driver_profile is h200_hgx", "detected as", "gb200_nvl72"],
    ),
    "driver version of another branch": (
        {"nvidia_driver_branch": 580, "nvidia_driver_version": "570.133.20"},
        None,
        ["nvidia_driver_version 570.133.20 is not of nvidia_driver_branch 580"],
    ),
    "driver version not exact": (
        {"nvidia_driver_version": "580"},
        None,
        ["nvidia_driver_version must be a full driver version"],
    ),
    "mirror URL without key": (
        {"nvidia_driver_repo_base_url": "https://mirror.example.internal/cuda"},
        None,
        ["nvidia_driver_repo_key_url must be set", "mirror.example.internal"],
    ),
    "mirror URL that is not a URL": (
        {"nvidia_driver_repo_url": "mirror/cuda", "nvidia_driver_repo_key_url": "file:///k.asc"},
        None,
        ["nvidia_driver_repo_url must be an http(s):// or file:// URL"],
    ),
    "proprietary modules on GB200": (
        H200_VARS,
        {**GB200_VARS, "nvidia_driver_open_modules": False},
        ["nvidia_driver_open_modules must be true on gb200_nvl72"],
    ),
    "IMEX rack group missing": (
        H200_VARS,
        {"nvidia_driver_profile": "gb200_nvl72"},
        ["nvidia_driver_imex_rack_group must name the rack"],
    ),
    "IMEX rack group that is not a group": (
        H200_VARS,
        {**GB200_VARS, "nvidia_driver_imex_rack_group": "nvl72_rack1"},
        ["nvidia_driver_imex_rack_group 'nvl72_rack1' is not an inventory group"],
    ),
    "IMEX rack group without the host": (
        H200_VARS,
        {**GB200_VARS, "nvidia_driver_imex_rack_group": "nvl72_rack02"},
        ["nvidia_driver_imex_rack_group 'nvl72_rack02' does not contain tray-1"],
    ),
    "branch given as a word": (
        {"nvidia_driver_branch": "latest"},
        None,
        ["nvidia_driver_branch"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_gpu_input_is_rejected_naming_the_variable(validate_input, assert_rejected, case):
    h200_vars, gb200_vars, expected = BAD_INPUT[case]
    result = run_validation(validate_input, {**H200_VARS, **h200_vars}, gb200_vars)
    output = assert_rejected(result, expected, case)
    # any_errors_fatal: nothing runs after validation, on any host.
    assert "monitoring-1" in output
