"""CUDA, NCCL and podman with NVIDIA container toolkit 1.18 (CDI) on a GB200 tray stand-in."""

import json

import pytest
from gpu_checks import (
    assert_cdi_devices_listed,
    assert_cdi_spec_names_every_gpu,
    import_shell_image,
)

testinfra_hosts = ["ansible://gpu-gb200"]

CUDA_PACKAGE = "cuda-toolkit-13-0"
CUDA_VERSION = "13.0.88-1"
NCCL_VERSION = "2.28.7-1+cuda13.0"
TOOLKIT_VERSION = "1.18.0-1"
TOOLKIT_PACKAGES = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
GPUS = 4
SPEC = "/var/run/cdi/nvidia.yaml"
IMAGE = "localhost/stand-in-shell:1"


def test_cuda_toolkit_installed_pinned_and_held(host):
    assert host.package(CUDA_PACKAGE).version == CUDA_VERSION
    assert CUDA_PACKAGE in host.check_output("apt-mark showhold").split()
    found = host.run("bash -lc 'command -v nvcc'")
    assert found.stdout.strip() == "/usr/local/cuda-13.0/bin/nvcc"
    conf = host.file("/etc/ld.so.conf.d/cuda-onprem-llm.conf").content_string
    assert "/usr/local/cuda-13.0/lib64" in conf.splitlines()


@pytest.mark.parametrize("package", ["libnccl2", "libnccl-dev"])
def test_nccl_installed_for_cuda_13_and_held(host, package):
    assert host.package(package).version == NCCL_VERSION
    assert package in host.check_output("apt-mark showhold").split()


def test_container_toolkit_repository_is_deb822_with_signed_by(host):
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert "URIs: file:///srv/nvidia-mirror/libnvidia-container/stable/deb/amd64" in sources
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources


@pytest.mark.parametrize("package", TOOLKIT_PACKAGES)
def test_container_toolkit_1_18_at_one_version_and_held(host, package):
    assert host.package(package).version == TOOLKIT_VERSION
    assert package in host.check_output("apt-mark showhold").split()


def test_no_docker_on_a_podman_host(host):
    assert not host.package("docker.io").is_installed
    assert not host.file("/etc/docker/daemon.json").exists


def test_podman_uses_the_chosen_oci_runtime(host):
    conf = host.file("/etc/containers/containers.conf.d/50-onprem-llm.conf").content_string
    assert 'runtime = "runc"' in conf
    info = json.loads(host.check_output("podman info --format json"))
    assert info["host"]["ociRuntime"]["name"] == "runc"


def test_cdi_refresh_units_enabled_and_watching(host):
    assert host.service("nvidia-cdi-refresh.path").is_enabled
    assert host.service("nvidia-cdi-refresh.path").is_running
    assert host.service("nvidia-cdi-refresh.service").is_enabled


def test_refreshed_cdi_spec_names_every_gpu_of_the_tray(host):
    text = host.file(SPEC).content_string
    assert_cdi_spec_names_every_gpu(text, GPUS)
    # One spec only, so that device names are not ambiguous.
    assert not host.file("/etc/cdi/nvidia.yaml").exists


def test_podman_resolves_the_cdi_devices(host):
    assert_cdi_devices_listed(host, GPUS)


@pytest.fixture(scope="module")
def shell_image(host):
    return import_shell_image(host, "podman", IMAGE)


def test_a_container_sees_every_gpu_through_cdi(host, shell_image):
    run = host.run(
        f"podman run --rm --network host --device nvidia.com/gpu=all {shell_image} "
        "/usr/bin/dash -c 'for node in /dev/nvidia*; do echo $node; done'"
    )
    assert run.rc == 0, run.stderr
    nodes = set(run.stdout.split())
    assert {f"/dev/nvidia{index}" for index in range(GPUS)} <= nodes
    assert {"/dev/nvidiactl", "/dev/nvidia-uvm"} <= nodes
    assert f"/dev/nvidia{GPUS}" not in nodes
