"""The nvidia_driver role on a GB200 NVL72 tray stand-in: IMEX domain, no fabric manager, tuning."""

from pathlib import Path

import pytest
from scenario_playbooks import assert_check_mode_changes_nothing

testinfra_hosts = ["ansible://gpu-gb200"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

VERSION = "580.126.09"


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["gpu-gb200"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


@pytest.mark.parametrize(
    "package", ["nvidia-driver-580-open", "nvidia-imex", "libnvidia-nscq", "nvidia-persistenced"]
)
def test_tray_packages_pinned_and_held(host, package):
    assert host.package(package).version == f"{VERSION}-1"
    assert package in host.check_output("apt-mark showhold").split()


def test_no_host_fabric_manager_on_gb200_trays(host):
    assert not host.package("nvidia-fabricmanager").is_installed
    assert (
        "nvidia-fabricmanager"
        not in host.file("/etc/apt/preferences.d/nvidia-driver-onprem-llm").content_string
    )


def test_imex_channel_created_by_the_driver(host):
    options = host.file("/etc/modprobe.d/nvidia-onprem-llm.conf").content_string
    assert "options nvidia" in options and "NVreg_CreateImexChannel0=1" in options


def test_imex_nodes_come_from_the_rack_group(host):
    address = host.check_output("hostname -I").split()[0]
    nodes = [
        line
        for line in host.file("/etc/nvidia-imex/nodes_config.cfg").content_string.splitlines()
        if line and not line.startswith("#")
    ]
    assert nodes == [address, "192.0.2.102"]


def test_imex_service_running_and_domain_up(host):
    assert host.service("nvidia-imex").is_enabled
    assert host.service("nvidia-imex").is_running
    assert host.socket("tcp://0.0.0.0:50000").is_listening
    assert "Domain State: UP" in host.check_output("nvidia-imex-ctl -N")


def test_imex_config_points_at_the_node_list(host):
    config = host.file("/etc/nvidia-imex/config.cfg").content_string
    assert "SERVER_PORT=50000" in config
    assert "IMEX_NODE_CONFIG_FILE=/etc/nvidia-imex/nodes_config.cfg" in config


def test_gb200_kernel_tuning_written(host):
    args = host.file("/etc/default/grub.d/90-onprem-llm-nvidia.cfg").content_string
    assert "iommu.passthrough=1 init_on_alloc=0 numa_balancing=disable" in args


def test_one_reboot_for_module_nouveau_and_kernel_arguments(host):
    reboots = host.file("/var/lib/nvidia-stand-in/reboots").content_string.splitlines()
    assert len(reboots) == 1
    assert "<product_name>NVIDIA GB200</product_name>" in host.check_output("nvidia-smi -q -x")
