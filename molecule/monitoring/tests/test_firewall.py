"""Both hosts run the firewall: every listening socket is on loopback or opened by its role,
and what Prometheus scrapes and the log host receives gets through it (the other tests of this
scenario see every target up and the gpu node's log arrive)."""

from __future__ import annotations

import socket_audit
import testinfra

testinfra_hosts = ["ansible://monitoring-1", "ansible://gpu-1"]

MONITORING = testinfra.get_host("ansible://monitoring-1")
GPU = testinfra.get_host("ansible://gpu-1")


def test_every_listening_socket_is_on_loopback_or_opened_by_its_role(host):
    assert socket_audit.unexpected_listeners(host) == []


def test_each_host_opens_its_own_services_only():
    # Named in the configuration file: the kernel keeps no comments.
    monitoring = MONITORING.file("/etc/nftables.conf").content_string
    gpu = GPU.file("/etc/nftables.conf").content_string
    for rule in ("# prometheus", "# alertmanager", "# audit-log-relp from groups all"):
        assert rule in monitoring and rule not in gpu
    for rule in ("# dcgm-exporter from groups monitoring", "# vllm-metrics-stand-in"):
        assert rule in gpu and rule not in monitoring
    for ruleset in (monitoring, gpu):
        assert "# node-exporter from groups monitoring" in ruleset


def test_the_monitoring_host_reaches_the_exporters_and_the_gpu_node_the_log_port():
    gpu_address = GPU.check_output("hostname -I").split()[0]
    monitoring_address = MONITORING.check_output("hostname -I").split()[0]
    for port in (9100, 9400, 8000):
        assert socket_audit.probe(MONITORING, gpu_address, port) == "open"
    assert socket_audit.probe(GPU, monitoring_address, 2514) == "open"
    # Prometheus is for the operators' networks, not for the GPU nodes.
    assert socket_audit.probe(GPU, monitoring_address, 9090) == "dropped"
