"""Version rules, container toolkit packages, CDI support and the daemon.json merge."""

from __future__ import annotations

import pytest
from ansible_collections.onprem.llm.plugins.module_utils import _gpu_userspace as userspace
from ansible_collections.onprem.llm.plugins.module_utils._nvidia_stack import StackInputError


@pytest.mark.parametrize(("package", "cuda"), [("13.0.88-1", "13.0"), ("12.8.1", "12.8")])
def test_cuda_package_version_of_the_release_passes(package, cuda):
    assert userspace.cuda_package_version(package, cuda) == package


@pytest.mark.parametrize("package", ["13.0", "13", "13.0.88-1-2", "v13.0.88", "latest"])
def test_cuda_package_version_must_be_exact(package):
    with pytest.raises(
        StackInputError, match="cuda_toolkit_package_version must be a package version"
    ):
        userspace.cuda_package_version(package, "13.0")


def test_cuda_package_version_of_another_release_fails():
    with pytest.raises(StackInputError, match=r"12.8.93-1 is not of cuda_toolkit_version 13.0"):
        userspace.cuda_package_version("12.8.93-1", "13.0")


def test_container_toolkit_packages_move_together():
    plan = userspace.container_toolkit_plan("1.17.8-1")
    assert plan["packages"] == {
        "nvidia-container-toolkit": "1.17.8-1",
        "nvidia-container-toolkit-base": "1.17.8-1",
        "libnvidia-container-tools": "1.17.8-1",
        "libnvidia-container1": "1.17.8-1",
    }
    assert "libnvidia-container1=1.17.8-1" in plan["apt"]
    assert "dnf" not in plan
    assert plan["held"] == sorted(plan["packages"])
    assert plan["cdi_mode"] == "static"


@pytest.mark.parametrize(
    ("version", "mode"),
    [("1.18.0-1", "refresh"), ("1.19.1", "refresh"), ("1.17.99-1", "static"), ("2.0.0", "refresh")],
)
def test_toolkit_from_1_18_uses_the_refresh_units(version, mode):
    assert userspace.container_toolkit_plan(version)["cdi_mode"] == mode


def test_toolkit_version_without_revision_gets_the_first_one():
    assert userspace.container_toolkit_plan("1.18.0")["version"] == "1.18.0-1"


@pytest.mark.parametrize("version", ["1.17", "latest", "1.17.8-1~rc1", ""])
def test_toolkit_version_must_be_exact(version):
    with pytest.raises(StackInputError, match="container_runtime_nvidia_toolkit_version must be"):
        userspace.container_toolkit_plan(version)


@pytest.mark.parametrize(
    ("package_version", "release"),
    [
        ("20.10.24+dfsg1-1+deb12u1", (20, 10, 24)),
        ("5:27.3.1-1~debian.12~bookworm", (27, 3, 1)),
        ("4.3.1+ds1-8+deb12u1", (4, 3, 1)),
    ],
)
def test_upstream_version_of_distribution_packages(package_version, release):
    assert userspace.upstream_version(package_version) == release


@pytest.mark.parametrize(
    ("engine", "version", "supported"),
    [
        # Debian 12's docker.io has no CDI: containers use --runtime nvidia.
        ("docker", "20.10.24+dfsg1-1+deb12u1", False),
        ("docker", "5:24.0.9-1~debian.12~bookworm", False),
        ("docker", "5:25.0.0-1~debian.12~bookworm", True),
        ("docker", "5:28.5.1-1~ubuntu.24.04~noble", True),
        ("podman", "4.3.1+ds1-8+deb12u1", True),
        ("podman", "4.0.2", False),
        ("podman", "0", False),
    ],
)
def test_cdi_support_by_engine_version(engine, version, supported):
    assert userspace.cdi_supported(engine, version) is supported


def test_cdi_support_of_an_unknown_engine_names_the_variable():
    with pytest.raises(
        StackInputError, match="container_runtime_engine must be one of docker, podman"
    ):
        userspace.cdi_supported("cri-o", "1.30")


def test_archive_checksum_must_be_sha256():
    good = "sha256:" + "0" * 64
    assert userspace.archive_checksum(good, "nccl_tests_checksum") == good
    for bad in ("", "md5:abc", "sha256:" + "0" * 63, "sha256:" + "G" * 64):
        with pytest.raises(StackInputError, match="nccl_tests_checksum must be 'sha256:'"):
            userspace.archive_checksum(bad, "nccl_tests_checksum")
