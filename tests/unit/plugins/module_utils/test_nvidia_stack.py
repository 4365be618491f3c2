"""Package sets, repository paths and version rules of the GPU host stack roles."""

from __future__ import annotations

import pytest
from ansible_collections.onprem.llm.plugins.module_utils import _hardware
from ansible_collections.onprem.llm.plugins.module_utils import _nvidia_stack as stack


@pytest.mark.parametrize(
    ("machine", "directory"),
    [("x86_64", "x86_64"), ("amd64", "x86_64"), ("aarch64", "sbsa"), ("arm64", "sbsa")],
)
def test_arm_servers_use_the_sbsa_repository(machine, directory):
    assert stack.repo_arch(machine) == directory


def test_cuda_repo_url_for_a_grace_tray_on_ubuntu_2404():
    url = stack.cuda_repo_url(
        "https://developer.download.nvidia.com/compute/cuda/repos/",
        stack.repo_distro("Ubuntu", "24.04"),
        "aarch64",
    )
    assert url == "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/sbsa/"


@pytest.mark.parametrize(
    ("distribution", "version", "expected"),
    [
        ("Ubuntu", "22.04", "ubuntu2204"),
        ("Debian", "12", "debian12"),
        ("Ubuntu", "24.04", "ubuntu2404"),
    ],
)
def test_repo_distro_names(distribution, version, expected):
    assert stack.repo_distro(distribution, version) == expected


def test_repo_distro_refuses_the_rhel_family():
    with pytest.raises(stack.StackInputError, match=r"Rocky 9\.4 has no NVIDIA CUDA repository"):
        stack.repo_distro("Rocky", "9.4")


def test_file_mirror_keeps_the_layout():
    assert (
        stack.cuda_repo_url("file:///srv/mirror/cuda", "debian12", "x86_64")
        == "file:///srv/mirror/cuda/debian12/x86_64/"
    )


def test_unknown_architecture_is_rejected():
    with pytest.raises(stack.StackInputError, match="ppc64le"):
        stack.repo_arch("ppc64le")


def test_h200_plan_pins_fabric_manager_with_the_driver():
    plan = stack.driver_plan("h200_hgx", 580, "580.126.09")
    assert plan["packages"] == {
        "nvidia-driver-580-open": "580.126.09-*",
        "nvidia-modprobe": "580.126.09-*",
        "nvidia-persistenced": "580.126.09-*",
        "libnvidia-nscq": "580.126.09-*",
        "nvidia-fabricmanager": "580.126.09-*",
    }
    assert plan["services"] == ["nvidia-persistenced", "nvidia-fabricmanager"]
    assert "nvidia-fabricmanager=580.126.09-*" in plan["apt"]
    assert plan["kernel_args"] == []


def test_branches_before_580_use_suffixed_names():
    plan = stack.driver_plan("h100_hgx", 570, "570.133.20")
    assert "nvidia-fabricmanager-570" in plan["packages"]
    assert "libnvidia-nscq-570" in plan["packages"]
    assert "nvidia-fabricmanager" not in plan["packages"]


def test_gb200_plan_has_imex_no_fabric_manager_and_opt_in_tuning():
    plan = stack.driver_plan("gb200_nvl72", 580, "580.126.09")
    assert "nvidia-imex" in plan["packages"]
    assert not any("fabricmanager" in name for name in plan["packages"])
    assert plan["services"] == ["nvidia-persistenced", "nvidia-imex"]
    assert "NVreg_CreateImexChannel0=1" in plan["modprobe"]["nvidia"]
    assert plan["kernel_args"] == []
    tuned = stack.driver_plan("gb200_nvl72", 580, "580.126.09", gb200_tuning=True)
    assert tuned["kernel_args"] == [
        "iommu.passthrough=1",
        "init_on_alloc=0",
        "numa_balancing=disable",
    ]


def test_b200_plan_adds_nvlsm_nvsdm_and_ib_modules():
    plan = stack.driver_plan("b200_hgx", 580, "580.126.09", nvlsm_version="2025.06.6")
    assert plan["packages"]["libnvsdm"] == "580.126.09-*"
    assert plan["packages"]["nvlsm"] == "2025.06.6-*"
    assert plan["packages"]["infiniband-diags"] == ""
    assert "infiniband-diags" not in plan["held"]
    assert plan["modules_load"] == ["mlx5_core", "ib_umad"]
    assert "nvlsm=2025.06.6-*" in plan["apt"]


def test_the_168gb_b200_board_gets_the_b200_stack():
    def plan(profile):
        return stack.driver_plan(profile, 580, "580.126.09", nvlsm_version="2025.06.6")

    assert plan("b200_168gb_hgx") == plan("b200_hgx")


def test_blackwell_requires_open_modules():
    with pytest.raises(stack.StackInputError, match="nvidia_driver_open_modules"):
        stack.driver_plan("gb200_nvl72", 580, "580.126.09", open_modules=False)
    assert (
        "nvidia-driver-580"
        in stack.driver_plan("h200_hgx", 580, "580.126.09", open_modules=False)["packages"]
    )


@pytest.mark.parametrize(
    ("branch", "version", "message"),
    [
        (580, "570.133.20", "is not of nvidia_driver_branch 580"),
        (580, "580", "full driver version"),
        (580, "latest", "full driver version"),
    ],
)
def test_driver_branch_and_version_must_agree(branch, version, message):
    with pytest.raises(stack.StackInputError, match=message):
        stack.check_driver(branch, version)


def test_unknown_profile_is_rejected():
    with pytest.raises(stack.StackInputError, match="nvidia_driver_profile must be one of"):
        stack.driver_plan("h300_hgx", 580, "580.126.09")


def test_cuda_needs_a_new_enough_driver():
    assert stack.check_cuda("12.8", 580)["dcgm_variant"] == "cuda12"
    assert stack.check_cuda("13.0", 580)["package"] == "cuda-toolkit-13-0"
    with pytest.raises(stack.StackInputError, match="needs driver branch 580"):
        stack.check_cuda("13.0", 570)


def test_nccl_must_match_the_cuda_major():
    assert stack.check_nccl("2.27.7-1+cuda12.9", "12.8") == "2.27.7-1+cuda12.9"
    with pytest.raises(stack.StackInputError, match="built for CUDA 13"):
        stack.check_nccl("2.28.7-1+cuda13.0", "12.8")


class _Vars(dict):
    pass


def test_imex_nodes_from_the_rack_group():
    groups = {"nvl72_rack01": ["tray01", "tray02"]}
    hostvars = {
        "tray01": _Vars(ansible_host="10.20.2.101"),
        "tray02": _Vars(ansible_host="10.20.2.102", nvidia_driver_imex_address="10.30.2.102"),
    }
    assert stack.imex_nodes("nvl72_rack01", groups, hostvars, "tray01") == [
        "10.20.2.101",
        "10.30.2.102",
    ]


@pytest.mark.parametrize(
    ("group", "host", "message"),
    [
        ("", "tray01", "must name the rack"),
        ("nvl72_rack02", "tray01", "is not an inventory group"),
        ("nvl72_rack01", "tray99", "does not contain tray99"),
    ],
)
def test_imex_rack_group_errors(group, host, message):
    with pytest.raises(stack.StackInputError, match=message):
        stack.imex_nodes(group, {"nvl72_rack01": ["tray01"]}, None, host)


def test_generic_board_with_nvswitches_gets_fabric_manager():
    plain = stack.driver_plan("generic", 580, "580.126.09")
    assert "nvidia-fabricmanager" not in plain["services"]
    switched = stack.driver_plan("generic", 580, "580.126.09", nvswitch=True)
    assert switched["packages"]["nvidia-fabricmanager"] == "580.126.09-*"
    assert "nvidia-fabricmanager" in switched["services"]
    # GB200 trays never run fabric manager, whatever the host reports.
    tray = stack.driver_plan("gb200_nvl72", 580, "580.126.09", nvswitch=True)
    assert "nvidia-fabricmanager" not in tray["services"]


def test_profiles_come_from_the_hardware_table():
    assert (*_hardware.PROFILES, "generic") == stack.PROFILES
    assert set(stack.NVSWITCH_PROFILES) == {"h100_hgx", "h200_hgx", "b200_hgx", "b200_168gb_hgx"}
    assert set(stack.OPEN_ONLY_PROFILES) == {"b200_hgx", "b200_168gb_hgx", "gb200_nvl72"}
