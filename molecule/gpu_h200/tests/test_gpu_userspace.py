"""CUDA toolkit, NCCL and docker with the NVIDIA container toolkit on an H200 HGX stand-in.

Debian 12's docker.io is 20.10, which has no CDI: containers use --runtime nvidia there, and the
static CDI spec of toolkit 1.17 is written for other consumers (podman, containerd).
"""

import json

import pytest
from gpu_checks import (
    assert_cdi_devices_listed,
    assert_cdi_spec_names_every_gpu,
    import_shell_image,
)

testinfra_hosts = ["ansible://gpu-h200"]

CUDA_PACKAGE = "cuda-toolkit-13-0"
CUDA_VERSION = "13.0.88-1"
NCCL_VERSION = "2.28.7-1+cuda13.0"
TOOLKIT_VERSION = "1.17.8-1"
TOOLKIT_PACKAGES = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
GPUS = 8
IMAGE = "localhost/stand-in-shell:1"


def test_cuda_toolkit_installed_pinned_and_held(host):
    assert host.package(CUDA_PACKAGE).version == CUDA_VERSION
    assert CUDA_PACKAGE in host.check_output("apt-mark showhold").split()
    pins = host.file("/etc/apt/preferences.d/cuda-toolkit-onprem-llm").content_string
    assert f"Package: {CUDA_PACKAGE}\nPin: version {CUDA_VERSION}\nPin-Priority: 1001" in pins


def test_cuda_comes_from_the_signed_cuda_repository(host):
    policy = host.check_output(f"apt-cache policy {CUDA_PACKAGE}")
    assert "file:/srv/nvidia-mirror/cuda/debian12/x86_64" in policy
    assert f"Candidate: {CUDA_VERSION}" in policy


def test_login_shell_finds_nvcc(host):
    profile = host.file("/etc/profile.d/cuda-onprem-llm.sh").content_string
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in profile
    found = host.run("bash -lc 'command -v nvcc && echo $CUDA_HOME && nvcc --version'")
    assert found.rc == 0, found.stderr
    assert found.stdout.splitlines()[0] == "/usr/local/cuda-13.0/bin/nvcc"
    assert "release 13.0" in found.stdout


def test_loader_knows_the_toolkit_libraries(host):
    conf = host.file("/etc/ld.so.conf.d/cuda-onprem-llm.conf").content_string
    assert "/usr/local/cuda-13.0/lib64" in conf.splitlines()


@pytest.mark.parametrize("package", ["libnccl2", "libnccl-dev"])
def test_nccl_installed_for_cuda_13_pinned_and_held(host, package):
    assert host.package(package).version == NCCL_VERSION
    assert package in host.check_output("apt-mark showhold").split()
    pins = host.file("/etc/apt/preferences.d/nccl-onprem-llm").content_string
    assert f"Package: {package}\nPin: version {NCCL_VERSION}\nPin-Priority: 1001" in pins


def test_nccl_library_and_header_present(host):
    assert host.file("/usr/lib/x86_64-linux-gnu/libnccl.so.2.28.7").exists
    assert host.file("/usr/include/nccl.h").exists
    # The mirror also has the CUDA 12 build; the pin keeps it out.
    assert f"Candidate: {NCCL_VERSION}" in host.check_output("apt-cache policy libnccl2")


def test_container_toolkit_repository_is_deb822_with_signed_by(host):
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert "URIs: file:///srv/nvidia-mirror/libnvidia-container/stable/deb/amd64" in sources
    assert "Suites: /" in sources
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources
    key = host.file("/etc/apt/keyrings/nvidia-container-toolkit.asc").content_string
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


@pytest.mark.parametrize("package", TOOLKIT_PACKAGES)
def test_container_toolkit_at_one_version_and_held(host, package):
    assert host.package(package).version == TOOLKIT_VERSION
    assert package in host.check_output("apt-mark showhold").split()
    pins = host.file("/etc/apt/preferences.d/nvidia-container-toolkit-onprem-llm").content_string
    assert f"Package: {package}\nPin: version {TOOLKIT_VERSION}\nPin-Priority: 1001" in pins
    # The mirror carries 1.18 too; the pin keeps every package at the chosen version.
    assert f"Candidate: {TOOLKIT_VERSION}" in host.check_output(f"apt-cache policy {package}")


def test_nvidia_ctk_reports_the_pinned_version(host):
    assert "version 1.17.8" in host.check_output("nvidia-ctk --version")


def test_daemon_json_merged_keeping_the_site_keys(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # Written by prepare.yml before the converge: still there.
    assert daemon["log-driver"] == "journald"
    assert daemon["max-concurrent-downloads"] == 3
    assert daemon["runtimes"]["nvidia"] == {
        "path": "/usr/bin/nvidia-container-runtime",
        "args": [],
    }
    # Not asked for, and docker 20.10 has no CDI.
    assert "default-runtime" not in daemon
    assert "features" not in daemon


def test_docker_runs_with_the_nvidia_runtime_and_the_site_settings(host):
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert "nvidia" in info["Runtimes"]
    assert info["LoggingDriver"] == "journald"
    assert info["DefaultRuntime"] == "runc"


def test_containerd_drop_in_declares_the_nvidia_runtime(host):
    dropin = host.file("/etc/containerd/conf.d/99-nvidia.toml").content_string
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in dropin
    config = host.file("/etc/containerd/config.toml").content_string
    assert 'imports = ["/etc/containerd/conf.d/*.toml"]' in config
    # containerd itself read it: the merged configuration has the runtime.
    dump = host.check_output("containerd config dump")
    assert "runtimes.nvidia" in dump
    assert "/usr/bin/nvidia-container-runtime" in dump
    assert host.service("containerd").is_running


def test_static_cdi_spec_names_every_gpu(host):
    spec = host.file("/etc/cdi/nvidia.yaml")
    assert spec.exists
    text = spec.content_string
    assert_cdi_spec_names_every_gpu(text, GPUS)
    assert "path: /dev/nvidiactl" in text
    # Generated for the installed driver, and not again while it stays.
    recorded = host.file("/var/lib/onprem-llm/container_runtime/cdi-driver-version")
    assert recorded.content_string.strip() == "580.126.09"
    assert not host.file("/var/run/cdi/nvidia.yaml").exists


def test_cdi_devices_listed(host):
    assert_cdi_devices_listed(host, GPUS)


@pytest.fixture(scope="module")
def shell_image(host):
    return import_shell_image(host, "docker", IMAGE)


def test_a_container_runs(host, shell_image):
    run = host.run(f"docker run --rm --network none {shell_image} /usr/bin/dash -c 'echo hello'")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "hello"
