"""Monitoring traffic inside the site is encrypted and signed in: node_exporter, Prometheus and
Alertmanager serve TLS with the host's site certificate, Prometheus and Alertmanager ask for a
password, Prometheus checks every certificate it scrapes, and a renewed certificate is served
without a restart."""

import time
from pathlib import Path

import pytest
import testinfra
import tls_profile
from scenario_playbooks import run_playbook

testinfra_hosts = ["ansible://monitoring-1"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]
GPU_NODE = testinfra.get_host("ansible://gpu-1")
SITE_CA = "/etc/onprem-llm/pki/ca.crt"
OPERATOR = "operator:monitoring-test-operator-password"


def status(host, url, *options):
    command = " ".join(["curl -s -o /dev/null -w '%{http_code}' --cacert", SITE_CA, *options, url])
    return host.run(command).stdout.strip()


def served_serial(host, port):
    return host.check_output(
        f"openssl s_client -connect 127.0.0.1:{port} -CAfile {SITE_CA} </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial"
    )


def main_pid(host, unit):
    return host.check_output(f"systemctl show -p MainPID --value {unit}")


@pytest.mark.parametrize("port", [9090, 9093, 9100])
def test_plain_http_gets_no_answer(host, port):
    assert status(host, f"http://127.0.0.1:{port}/metrics") != "200"
    assert status(host, f"https://127.0.0.1:{port}/metrics", "-u", OPERATOR) == "200"


def test_the_gpu_nodes_exporter_serves_only_tls():
    assert status(GPU_NODE, "http://127.0.0.1:9100/metrics") != "200"
    assert status(GPU_NODE, "https://127.0.0.1:9100/metrics") == "200"


@pytest.mark.parametrize("port", [9090, 9093, 9100])
def test_the_endpoints_meet_mozillas_intermediate_profile(host, port):
    assert tls_profile.violations(tls_profile.host_runner(host), f"127.0.0.1:{port}") == []


def test_the_gpu_nodes_exporter_meets_mozillas_intermediate_profile():
    assert tls_profile.violations(tls_profile.host_runner(GPU_NODE), "127.0.0.1:9100") == []


@pytest.mark.parametrize("port", [9090, 9093])
def test_prometheus_and_alertmanager_ask_for_a_password(host, port):
    url = (
        f"https://127.0.0.1:{port}/api/v2/status"
        if port == 9093
        else (f"https://127.0.0.1:{port}/api/v1/status/buildinfo")
    )
    assert status(host, url) == "401"
    assert status(host, url, "-u", "operator:not-the-password-of-operator") == "401"
    assert status(host, url, "-u", "nobody:monitoring-test-operator-password") == "401"
    assert status(host, url, "-u", OPERATOR) == "200"
    assert status(host, url, "-u", "grafana:monitoring-test-grafana-password") == "200"


def test_hosts_keep_password_hashes_and_key_copies_only_for_prometheus(host):
    web = host.file("/etc/prometheus/web-config.yml")
    assert (web.user, web.group, web.mode) == ("root", "prometheus", 0o640)
    assert "monitoring-test-operator-password" not in web.content_string
    assert web.content_string.count('"$2b$10$') == 2
    assert host.run("promtool check web-config /etc/prometheus/web-config.yml").rc == 0
    for directory in ("/etc/prometheus/tls", "/etc/prometheus/node-exporter-tls"):
        key = host.file(f"{directory}/server.key")
        assert (key.user, key.group, key.mode) == ("root", "prometheus", 0o640)
    assert host.file("/etc/onprem-llm/pki/server.key").mode == 0o600


def test_alerts_reach_alertmanager_over_tls_with_sign_in(host):
    config = host.file("/etc/prometheus/prometheus.yml").content_string
    assert "scheme: https" in config
    reply = host.check_output(
        f"curl -sf --cacert {SITE_CA} -u {OPERATOR} https://127.0.0.1:9090/api/v1/alertmanagers"
    )
    assert '"url":"https://127.0.0.1:9093/api/v2/alerts"' in reply


def test_a_renewed_certificate_is_served_without_a_restart(host):
    units = {
        (host, "prometheus"): main_pid(host, "prometheus"),
        (host, "prometheus-alertmanager"): main_pid(host, "prometheus-alertmanager"),
        (GPU_NODE, "prometheus-node-exporter"): main_pid(GPU_NODE, "prometheus-node-exporter"),
    }
    before = {
        "node": served_serial(GPU_NODE, 9100),
        "prometheus": served_serial(host, 9090),
        "alertmanager": served_serial(host, 9093),
    }
    output, ok, seconds = run_playbook(
        SCENARIO_DIR / "renew_certificate.yml",
        "-e",
        "pki_certificate_days=400 pki_renew_before_days=380",
    )
    assert ok, output
    print(f"renewal run: {seconds:.0f} s")
    after = {
        "node": served_serial(GPU_NODE, 9100),
        "prometheus": served_serial(host, 9090),
        "alertmanager": served_serial(host, 9093),
    }
    assert all(after[name] != before[name] for name in before), (before, after)
    for (node, unit), pid in units.items():
        assert main_pid(node, unit) == pid, unit
    # Prometheus still verifies the renewed certificates: every target is still up.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        down = host.check_output(
            f"curl -sfG --cacert {SITE_CA} -u {OPERATOR} https://127.0.0.1:9090/api/v1/query"
            " --data-urlencode 'query=up == 0'"
        )
        if '"result":[]' in down:
            break
        time.sleep(2)
    assert '"result":[]' in down, down
