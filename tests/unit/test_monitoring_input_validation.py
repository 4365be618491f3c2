"""Bad monitoring input fails in the validation play, before any host is touched, naming the
variable (same pattern as test_input_validation.py: controller-side only, hosts do not exist)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from validation_errors import assert_each_host_reports_its_case, gpu_site, one_host_per_case

GOOD_MONITORING_VARS = {
    "prometheus_retention_time": "90d",
    "prometheus_retention_size": "500GB",
    "prometheus_scrape_groups": ["node", "dcgm", "engines"],
    "prometheus_scrape_overrides": {"haproxy": {"port": 8404}},
    "prometheus_alert_gpu_temperature_celsius": 83,
    "prometheus_alertmanager_receivers": [
        {"name": "oncall", "url": "https://alerts.example.internal/hook"},
        {"name": "gpu-team", "url": "http://10.20.0.40:9000/", "matchers": ['severity="critical"']},
    ],
    "prometheus_alertmanager_default_receiver": "oncall",
    "prometheus_web_users": {
        "grafana": "a-grafana-password-from-the-vault",
        "operator": "an-operator-password-from-the-vault",
    },
}


def run_validation(
    validate_input: Callable[[dict], subprocess.CompletedProcess[str]],
    monitoring_vars: dict,
    node_vars: dict | None = None,
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {"hosts": {"node-1": node_vars or {}}},
                "monitoring": {"hosts": {"monitoring-1": monitoring_vars}},
            }
        }
    }
    return validate_input(inventory)


def test_good_monitoring_input_passes(validate_input):
    result = run_validation(validate_input, GOOD_MONITORING_VARS)
    assert result.returncode == 0, result.stdout + result.stderr


BAD_MONITORING_INPUT = {
    "unknown scrape target group": (
        {"prometheus_scrape_groups": ["node", "nodes"]},
        ["prometheus_scrape_groups", "nodes"],
    ),
    "override of an unknown target group": (
        {"prometheus_scrape_overrides": {"dcgm_exporter": {"port": 9400}}},
        ["prometheus_scrape_overrides.dcgm_exporter", "node, dcgm, haproxy"],
    ),
    "override with an unknown setting": (
        {"prometheus_scrape_overrides": {"node": {"prot": 9100}}},
        ["prometheus_scrape_overrides.node"],
    ),
    "retention that does not parse": (
        {"prometheus_retention_time": "30 days"},
        ["prometheus_retention_time", "30 days"],
    ),
    "retention size that does not parse": (
        {"prometheus_retention_size": "500G"},
        ["prometheus_retention_size", "500G"],
    ),
    "hold time that does not parse": (
        {"prometheus_alert_for_override": "ten seconds"},
        ["prometheus_alert_for_override"],
    ),
    "temperature threshold out of range": (
        {"prometheus_alert_gpu_temperature_celsius": 850},
        ["prometheus_alert_gpu_temperature_celsius", "850"],
    ),
    "KV cache threshold given as a percentage": (
        {"prometheus_alert_kv_cache_usage_ratio": 90},
        ["prometheus_alert_kv_cache_usage_ratio", "at most 1"],
    ),
    "negative queue depth threshold": (
        {"prometheus_alert_queue_depth": -5},
        ["prometheus_alert_queue_depth"],
    ),
    "threshold that is not a number": (
        {"prometheus_alert_ttft_p95_seconds": "fast"},
        ["prometheus_alert_ttft_p95_seconds"],
    ),
    "Alertmanager receiver without URL": (
        {"prometheus_alertmanager_receivers": [{"name": "oncall"}]},
        ["prometheus_alertmanager_receivers", "url"],
    ),
    "Alertmanager receiver with an empty URL": (
        {"prometheus_alertmanager_receivers": [{"name": "oncall", "url": ""}]},
        ["prometheus_alertmanager_receivers[0]", "url"],
    ),
    "TLS web without any user": (
        {"prometheus_web_users": {}},
        ["prometheus_web_users is empty", "vault"],
    ),
    "web users without TLS": (
        {"prometheus_web_tls_cert_file": "", "prometheus_web_tls_key_file": ""},
        ["prometheus_web_users needs prometheus_web_tls_cert_file"],
    ),
    "web certificate without its key": (
        {"prometheus_web_tls_key_file": ""},
        ["prometheus_web_tls_cert_file and prometheus_web_tls_key_file go together"],
    ),
    "web password too short": (
        {"prometheus_web_users": {"operator": "secret"}},
        ["prometheus_web_users", "at least 16 characters", "operator"],
    ),
    "web user name with a colon": (
        {"prometheus_web_users": {"ops:team": "a-long-enough-password-for-ops"}},
        ["prometheus_web_users", "ops:team"],
    ),
    "web users given as a list": (
        {"prometheus_web_users": ["operator"]},
        ["prometheus_web_users"],
    ),
    "internal user who is not a web user": (
        {"prometheus_web_internal_user": "prometheus"},
        ["prometheus_web_internal_user 'prometheus'", "grafana"],
    ),
    "default receiver that does not exist": (
        {
            "prometheus_alertmanager_receivers": [{"name": "oncall", "url": "http://a.test/"}],
            "prometheus_alertmanager_default_receiver": "pager",
        },
        ["prometheus_alertmanager_default_receiver", "pager"],
    ),
}


def test_every_bad_monitoring_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One monitoring host per case, as an inventory with many mistakes is reported in one pass."""
    hosts = one_host_per_case(BAD_MONITORING_INPUT, "monitoring-", GOOD_MONITORING_VARS)
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {"hosts": {"node-1": {}}},
                "monitoring": {"hosts": hosts},
            }
        }
    }
    output = assert_rejected(validate_input(inventory), [], "several bad monitoring hosts")
    # any_errors_fatal: the run stops at validation, before any converge play.
    assert "PLAY RECAP" in output
    assert_each_host_reports_its_case(output, BAD_MONITORING_INPUT, "monitoring-")


BAD_NODE_EXPORTER_INPUT = {
    "unknown install method": (
        {"node_exporter_install_method": "snap"},
        ["node_exporter_install_method", "package, binary"],
    ),
    "pinned release without a checksum": (
        {"node_exporter_install_method": "binary"},
        ["node_exporter_binary_checksums.amd64", "sha256"],
    ),
    "basic auth without TLS": (
        {
            "node_exporter_tls_cert_file": "",
            "node_exporter_tls_key_file": "",
            "node_exporter_basic_auth_users": {"prometheus": "$2y$10$" + "a" * 53},
        },
        ["node_exporter_basic_auth_users", "node_exporter_tls_cert_file"],
    ),
    "listen address without a port": (
        {"node_exporter_listen_address": "0.0.0.0"},
        ["node_exporter_listen_address", "ADDRESS:PORT"],
    ),
    "plain HTTP without naming the link": (
        {"node_exporter_tls_cert_file": "", "node_exporter_tls_key_file": ""},
        [
            # The summary line names the host too.
            "{host}: node_exporter: node_exporter_tls_cert_file: '' leaves node_exporter",
            "onprem_llm_plaintext_links: [node_exporter]",
        ],
    ),
    "a link name that does not exist": (
        {"onprem_llm_plaintext_links": ["node-exporter"]},
        ["onprem_llm_plaintext_links is a list of links", "node-exporter"],
    ),
}


def test_plain_http_passes_once_its_link_is_named(validate_input):
    plain = {
        "node_exporter_tls_cert_file": "",
        "node_exporter_tls_key_file": "",
        "onprem_llm_plaintext_links": ["node_exporter"],
    }
    result = run_validation(validate_input, GOOD_MONITORING_VARS, plain)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_bad_node_exporter_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One GPU node per case, as an inventory with many mistakes is reported in one pass."""
    nodes = one_host_per_case(BAD_NODE_EXPORTER_INPUT, "node-")
    inventory = gpu_site(nodes, GOOD_MONITORING_VARS)
    output = assert_rejected(validate_input(inventory), [], "several bad GPU nodes")
    assert_each_host_reports_its_case(output, BAD_NODE_EXPORTER_INPUT, "node-")
