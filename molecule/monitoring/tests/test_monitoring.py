"""Prometheus on the monitoring host scrapes the GPU node's exporters, records the llm:* series
and fires alerts when an exporter stops; Alertmanager delivers them to the webhook."""

import json
import time
from pathlib import Path

import pytest
import testinfra
from scenario_playbooks import assert_check_mode_changes_nothing
from unit_sandbox import assert_sandboxed

testinfra_hosts = ["ansible://monitoring-1"]

SCENARIO_DIR = Path(__file__).resolve().parents[1]

GPU_NODE = testinfra.get_host("ansible://gpu-1")


def api(host, path):
    return json.loads(host.check_output(f"curl -sf 'http://127.0.0.1:9090/api/v1/{path}'"))["data"]


def query(host, expr):
    reply = host.check_output(
        "curl -sfG http://127.0.0.1:9090/api/v1/query --data-urlencode %s",
        "query=" + expr,
    )
    return json.loads(reply)["data"]["result"]


def wait_for(check, timeout=90, interval=2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def firing(host):
    return {
        (alert["labels"]["alertname"], alert["labels"].get("host"), alert["labels"].get("job"))
        for alert in api(host, "alerts")["alerts"]
        if alert["state"] == "firing"
    }


def test_check_mode_on_the_converged_hosts_changes_nothing():
    seconds = assert_check_mode_changes_nothing(SCENARIO_DIR, ["monitoring-1", "gpu-1"])
    print(f"check mode on the converged hosts: {seconds:.0f} s")


def test_configuration_is_managed_and_valid(host):
    assert host.file("/etc/prometheus/prometheus.yml").contains("Ansible managed")
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    args = host.file("/etc/default/prometheus").content_string
    assert "--storage.tsdb.retention.time=30d" in args
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        assert host.service(service).is_running
        assert host.service(service).is_enabled


@pytest.mark.parametrize(
    "unit",
    ["prometheus.service", "prometheus-alertmanager.service", "prometheus-node-exporter.service"],
)
def test_monitoring_services_are_sandboxed(host, unit):
    assert host.service(unit).is_running
    assert_sandboxed(host, unit)


@pytest.mark.parametrize(
    "unit", ["prometheus-node-exporter.service", "onprem-llm-certificate-expiry.service"]
)
def test_gpu_node_exporters_are_sandboxed(unit):
    assert_sandboxed(GPU_NODE, unit)


def test_every_target_is_up(host):
    def targets():
        active = api(host, "targets?state=active")["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = wait_for(targets)
    assert active, api(host, "targets?state=active")["activeTargets"]
    jobs = {t["labels"]["job"] for t in active}
    assert jobs == {"prometheus", "alertmanager", "node", "dcgm", "engine_vllm"}
    engine = next(t for t in active if t["labels"]["job"] == "engine_vllm")
    assert engine["labels"]["model"] == "tiny-llama"
    assert engine["labels"]["rack"] == "rack-a"
    assert engine["scrapeUrl"].endswith(":8000/metrics")
    gpu_node = next(
        t for t in active if t["labels"]["job"] == "node" and t["labels"]["host"] == "gpu-1"
    )
    assert gpu_node["labels"]["gpu_node"] == "true"


@pytest.mark.parametrize(
    "series",
    [
        "llm:requests:rate5m",
        "llm:request_error_ratio:rate5m",
        "llm:e2e_latency_seconds:p50",
        "llm:e2e_latency_seconds:p95",
        "llm:e2e_latency_seconds:p99",
        "llm:ttft_seconds:p50",
        "llm:ttft_seconds:p95",
        "llm:generation_tokens:rate5m",
        "llm:queue_depth",
        "llm:kv_cache_usage:ratio",
        "llm:gpu_utilization:ratio",
        "llm:gpu_memory_used:ratio",
        "llm:model:e2e_latency_seconds:p99",
        "llm:site:requests:rate5m",
        "llm:site:gpu_utilization:avg",
    ],
)
def test_recording_rules_produce_series(host, series):
    result = wait_for(lambda: query(host, series), timeout=60)
    assert result, f"{series} has no series"
    labels = result[0]["metric"]
    assert labels["site"] == "molecule"
    if not series.startswith("llm:site:"):
        assert labels.get("model", "tiny-llama") == "tiny-llama"
        assert labels.get("host", "gpu-1") == "gpu-1"


def test_recorded_values_follow_the_engine(host):
    # The stand-in's requests grow steadily, its queue holds one request, two GPUs at 87% and 64%.
    assert float(wait_for(lambda: query(host, "llm:requests:rate5m > 0"))[0]["value"][1]) > 0
    assert float(query(host, "llm:queue_depth")[0]["value"][1]) == 1
    utilisation = {
        r["metric"]["gpu"]: float(r["value"][1]) for r in query(host, "llm:gpu_utilization:ratio")
    }
    assert utilisation == {"0": 0.87, "1": 0.64}


def test_expiring_certificate_fires_its_alert(host):
    assert wait_for(lambda: ("CertificateExpiringSoon", "gpu-1", None) in firing(host))
    assert ("CertificateExpiringSoon", "monitoring-1", None) in firing(host)
    expiry = query(host, 'onprem_llm_certificate_expiry_timestamp_seconds{host="gpu-1"} - time()')
    assert 2 * 86400 < float(expiry[0]["value"][1]) <= 3 * 86400


def test_no_health_alert_fires_while_all_is_well(host):
    names = {name for name, _, _ in firing(host)}
    assert not names & {"TargetDown", "GpuNodeWithoutDcgmExporter", "GpuXidError"}


def test_stopped_dcgm_exporter_fires_its_alerts_and_notifies(host):
    GPU_NODE.check_output("systemctl stop dcgm-exporter-stand-in")
    try:
        assert wait_for(lambda: ("GpuNodeWithoutDcgmExporter", "gpu-1", None) in firing(host))
        assert ("TargetDown", "gpu-1", "dcgm") in firing(host)

        def delivered():
            posts = host.run("cat /var/lib/alert-webhook-stand-in/*.json").stdout
            return "GpuNodeWithoutDcgmExporter" in posts

        assert wait_for(delivered, timeout=60)
    finally:
        GPU_NODE.check_output("systemctl start dcgm-exporter-stand-in")

