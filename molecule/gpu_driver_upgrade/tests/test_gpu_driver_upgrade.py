"""Upgrading the driver moves every pinned package together and reboots once for it."""

import json
from pathlib import Path

import pytest
from gpu_checks import HGX_DRIVER_PACKAGES
from scenario_playbooks import assert_check_mode_changes_nothing

testinfra_hosts = ["ansible://gpu-upgrade"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

OLD, NEW = "580.95.05", "580.126.09"
PINNED = HGX_DRIVER_PACKAGES


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["gpu-upgrade"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


@pytest.mark.parametrize("package", PINNED)
def test_every_pinned_package_moved_to_the_new_version_and_is_held(host, package):
    assert host.package(package).version == f"{NEW}-1"
    assert package in host.check_output("apt-mark showhold").split()


def test_pins_name_the_new_version_only(host):
    pins = host.file("/etc/apt/preferences.d/nvidia-driver-onprem-llm").content_string
    assert f"Pin: version {NEW}-*" in pins
    assert OLD not in pins


def test_upgrade_rebooted_exactly_once(host):
    # One reboot when prepare installed the old version, one for the upgrade; none in idempotence.
    reboots = [
        line.split()[1]
        for line in host.file("/var/lib/nvidia-stand-in/reboots").content_string.splitlines()
    ]
    assert reboots == [f"{OLD}-1", f"{NEW}-1"]


def test_loaded_module_matches_userspace_after_upgrade(host):
    assert (
        f" {NEW} "
        in host.file("/var/lib/nvidia-stand-in/proc/driver/nvidia/version").content_string
    )
    assert f"<driver_version>{NEW}</driver_version>" in host.check_output("nvidia-smi -q -x")


def test_fabric_manager_running_the_new_version(host):
    assert host.service("nvidia-fabricmanager").is_running
    assert (
        host.file("/usr/share/nvidia-stand-in/packages/nvidia-fabricmanager").content_string.strip()
        == f"{NEW}-1"
    )


def test_upgraded_node_passed_validation_before_the_run_went_on(host):
    # driver_upgrade.yml validates each node right after its converge.
    report = json.loads(host.file("/var/lib/onprem-llm/gpu-validate/report.json").content_string)
    assert report["passed"] is True, report["failures"]
    assert report["driver"] == {"kernel_module": NEW, "userspace": NEW, "cuda": "13.0"}
    assert report["gates"]["driver_versions"]["reason"] == (
        f"kernel module and userspace driver are both {NEW}"
    )
    assert report["gates"]["fabric"]["status"] == "passed"
    assert report["gates"]["container_cdi"]["reason"] == "skipped by gpu_validate_skip_gates"
