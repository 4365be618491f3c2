"""Behaviour of the common role on a node, seen from the node and from a second host."""

import re
from pathlib import Path

import pytest
import testinfra
from scenario_playbooks import assert_check_mode_changes_nothing

testinfra_hosts = ["ansible://common-node"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

CLIENT = testinfra.get_host("ansible://common-client")

# molecule/common/clients/tcp_probe.py, which prepare.yml copies to the client.
PROBE = "python3 /opt/onprem-llm-test-clients/tcp_probe.py"


@pytest.fixture(scope="module")
def node_address(host):
    return host.check_output("hostname -I").split()[0]


def probe_from_client(address, port):
    return CLIENT.check_output(f"{PROBE} {address} {port}")


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["common-node", "common-client"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


def test_allowed_group_port_answers_from_client(node_address):
    assert probe_from_client(node_address, 9100) == "open"
    reply = CLIENT.check_output(
        f"python3 -c 'import urllib.request as u; "
        f'print(u.urlopen("http://{node_address}:9100/", timeout=3).status)\''
    )
    assert reply == "200"


@pytest.mark.parametrize("port", [9200, 9300])
def test_port_not_allowed_for_client_is_dropped(node_address, port):
    assert probe_from_client(node_address, port) == "dropped"


@pytest.mark.parametrize("port", [9200, 9300])
def test_dropped_ports_have_a_listener_on_loopback(host, port):
    # The same ports answer locally, so the drop above is the firewall's doing.
    assert (
        host.run(
            f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'"
        ).rc
        == 0
    )


def test_ssh_answers_from_admin_network(node_address):
    assert probe_from_client(node_address, 22) == "open"


def test_ruleset_is_default_deny_and_names_its_rules(host):
    ruleset = host.check_output("nft list table inet onprem_llm")
    assert "policy drop" in ruleset
    # node_exporter's rule, declared by its role (site.yml runs it on gpu_nodes), named in the
    # configuration file (the kernel keeps no comments).
    assert (
        "# node-exporter from groups monitoring" in host.file("/etc/nftables.conf").content_string
    )
    assert "tcp dport 9100" in ruleset
    assert "udp dport 9300 ip saddr 198.51.100.0/24 accept" in ruleset
    assert "192.0.2.0/24" in ruleset
    assert host.service("nftables").is_enabled


def test_chrony_runs_with_the_given_servers(host):
    assert host.service("chrony").is_running
    assert host.service("chrony").is_enabled
    config = host.file("/etc/chrony/chrony.conf")
    assert config.contains("^server ntp.invalid iburst$")
    assert config.contains("Ansible managed")


def test_kernel_settings_are_live(host):
    assert host.check_output("sysctl -n net.core.somaxconn") == "4096"
    assert host.check_output("sysctl -n net.ipv4.tcp_keepalive_time") == "240"


def test_limits_apply_to_logins_and_services(host):
    limits = host.file("/etc/security/limits.d/90-onprem-llm.conf").content_string
    assert re.search(r"^\*\s+hard\s+memlock\s+4096$", limits, re.MULTILINE)
    # Login sessions get them through pam_limits, root included.
    assert host.check_output("su - root -c 'ulimit -Hl; ulimit -Hn'").split() == [
        "4096",
        "16384",
    ]
    # Services do not pass through PAM: a new systemd service gets the limits from the manager.
    service_limits = host.check_output(
        "systemd-run --quiet --wait --pipe --property=Type=exec sh -c 'ulimit -Hl; ulimit -Hn'"
    )
    assert service_limits.split() == ["4096", "16384"]


def test_model_store_directory(host):
    store = host.file("/srv/models")
    assert store.is_directory
    assert store.mode == 0o750


def test_unattended_upgrades_skip_pinned_packages(host):
    config = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    for pattern in ("nvidia-", "cuda-", "datacenter-gpu-manager", "nvidia-container-toolkit"):
        assert f'"{pattern}"' in config
    assert 'APT::Periodic::Unattended-Upgrade "1"' in host.check_output("apt-config dump")


def test_probe_tells_refused_from_dropped():
    # A closed port answers with a reset, so "dropped" above means the firewall stayed silent.
    assert CLIENT.check_output(f"{PROBE} 127.0.0.1 9999") == "refused"


def test_emptied_package_lists_were_refreshed_for_the_install(host):
    # prepare.yml removed the package and emptied the lists just before the converge.
    emptied_at = int(host.file("/var/tmp/package-lists-emptied-at").content_string)
    assert host.package("unattended-upgrades").is_installed
    assert host.file("/var/lib/apt/periodic/update-success-stamp").mtime.timestamp() >= emptied_at
    assert host.check_output("ls /var/lib/apt/lists | grep -c _Packages") != "0"
