"""The nvidia_driver role on an H200 HGX stand-in: repository, pins, holds, kernel, services."""

from pathlib import Path

import pytest
from gpu_checks import HGX_DRIVER_PACKAGES
from scenario_playbooks import assert_check_mode_changes_nothing

testinfra_hosts = ["ansible://gpu-h200"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

VERSION = "580.126.09"
PINNED = HGX_DRIVER_PACKAGES


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["gpu-h200"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


def test_repository_is_deb822_with_signed_by_and_computed_url(host):
    sources = host.file("/etc/apt/sources.list.d/nvidia-cuda.sources").content_string
    assert "URIs: file:///srv/nvidia-mirror/cuda/debian12/x86_64/" in sources
    assert "Suites: /" in sources
    assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in sources


def test_repository_key_is_the_mirror_key_and_verifies_the_index(host):
    key = host.file("/etc/apt/keyrings/nvidia-cuda.asc")
    assert key.content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert key.mode == 0o644
    # apt accepted the signed InRelease: a refresh succeeds without signature warnings.
    update = host.run("apt-get update -o Dir::Etc::sourcelist=/dev/null 2>&1")
    assert update.rc == 0
    assert "NO_PUBKEY" not in update.stdout and "not signed" not in update.stdout


@pytest.mark.parametrize("package", PINNED)
def test_driver_stack_installed_at_one_version_and_held(host, package):
    assert host.package(package).version == f"{VERSION}-1"
    assert package in host.check_output("apt-mark showhold").split()


def test_pin_file_keeps_newer_versions_out(host):
    pins = host.file("/etc/apt/preferences.d/nvidia-driver-onprem-llm").content_string
    for package in PINNED:
        assert f"Package: {package}\nPin: version {VERSION}-*\nPin-Priority: 1001" in pins
    # The mirror has an older driver too; the pin makes the installed one the candidate.
    policy = host.check_output("apt-cache policy nvidia-driver-580-open")
    assert f"Candidate: {VERSION}-1" in policy


def test_gb200_packages_not_installed_on_hgx(host):
    assert not host.package("nvidia-imex").is_installed


def test_nouveau_blacklisted_and_initramfs_tools_present(host):
    blacklist = host.file("/etc/modprobe.d/blacklist-nouveau-onprem-llm.conf").content_string
    assert blacklist.startswith("#")
    assert "blacklist nouveau" in blacklist
    assert "options nouveau modeset=0" in blacklist
    assert host.package("initramfs-tools").is_installed


def test_modprobe_options_have_no_imex_channel_on_hgx(host):
    options = host.file("/etc/modprobe.d/nvidia-onprem-llm.conf").content_string
    assert "Ansible managed" in options
    assert "NVreg_CreateImexChannel0" not in options


@pytest.mark.parametrize("service", ["nvidia-persistenced", "nvidia-fabricmanager"])
def test_services_enabled_and_running(host, service):
    unit = host.service(service)
    assert unit.is_enabled
    assert unit.is_running


def test_persistence_daemon_runs_in_persistence_mode(host):
    args = host.file("/run/nvidia-stand-in/nvidia-persistenced.args").content_string
    assert "--persistence-mode" in args


def test_rebooted_once_and_module_now_matches_userspace(host):
    # Fresh host: no NVIDIA module and nouveau loaded, so exactly one (stand-in) reboot.
    reboots = host.file("/var/lib/nvidia-stand-in/reboots").content_string.splitlines()
    assert len(reboots) == 1
    version = host.file("/var/lib/nvidia-stand-in/proc/driver/nvidia/version").content_string
    assert f" {VERSION} " in version
    assert f"<driver_version>{VERSION}</driver_version>" in host.check_output("nvidia-smi -q -x")
