"""The Prometheus and Alertmanager configurations the prometheus role builds from an inventory:
one job per target group present, engines by type with their metrics paths, target labels for
site, host and rack, and `promtool check config` passing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE = REPO_ROOT / "roles" / "prometheus"

INVENTORY = {
    "all": {
        "children": {
            "gpu_nodes": {
                "hosts": {
                    "gpu-1": {
                        "ansible_host": "10.0.0.11",
                        "rack": "rack-a",
                        "engine_instances": [
                            {"name": "llama-0", "engine": "vllm", "port": 8000, "model": "llama"},
                            {"name": "llama-1", "port": 8001, "model": "llama"},
                            {
                                "name": "mistral-0",
                                "engine": "tgi",
                                "port": 8002,
                                "model": "mistral",
                            },
                            {"name": "qwen-0", "engine": "trtllm", "port": 8003, "model": "qwen"},
                        ],
                    },
                    "gpu-2": {"firewall_address": ["10.0.0.12"]},
                }
            },
            "engine_nodes": {
                "children": {"gpu_nodes": {}},
                "hosts": {
                    # Not in the run: its instances come from its engine variables.
                    "cpu-engine-1": {
                        "ansible_host": "10.0.0.13",
                        "engine_device": "cpu",
                        "engine_cpu_instances": 2,
                        "engine_model": {"name": "tiny-llama", "context_length": 512},
                    },
                },
            },
            "gateways": {
                "hosts": {
                    "gw-1": {"ansible_host": "10.0.0.21", "gateway_service_enabled": True},
                    "gw-2": {"ansible_host": "10.0.0.22"},
                }
            },
            "monitoring": {"hosts": {"mon-1": {"prometheus_target_address": "10.0.0.41"}}},
        }
    }
}

WEB_USERS = {"operator": "an-operator-password-0123", "grafana": "a-grafana-password-0123"}

PLAYBOOK = """
- name: Render the prometheus role's configurations
  hosts: mon-1
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Render each configuration
      ansible.builtin.template:
        src: "{role}/templates/{{{{ item }}}}.j2"
        dest: "{{{{ out }}}}/{{{{ item }}}}"
        mode: "0644"
      loop:
        - prometheus.yml
        - alertmanager.yml
        - prometheus-defaults
        - alertmanager-defaults
        - web-config.yml
"""


def render(tmp_path: Path, extra_vars: dict | None = None) -> Path:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "render.yml").write_text(PLAYBOOK.format(role=ROLE))
    variables = {
        "out": str(tmp_path),
        "ansible_python_interpreter": sys.executable,
        "prometheus_web_users": WEB_USERS,
    }
    variables.update(extra_vars or {})
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(tmp_path / "hosts.yml"),
            str(tmp_path / "render.yml"),
            "-e",
            json.dumps(variables),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("config"))


def jobs(directory: Path) -> dict[str, dict]:
    config = yaml.safe_load((directory / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets(job: dict) -> dict[str, dict]:
    return {t["targets"][0]: t["labels"] for t in job["static_configs"]}


def test_config_passes_promtool(rendered, promtool):
    result = subprocess.run(
        ["promtool", "check", "config", str(rendered / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_job_per_target_group_present(rendered):
    # No redis group in this inventory: no redis job.
    assert set(jobs(rendered)) == {
        "prometheus",
        "alertmanager",
        "node",
        "dcgm",
        "haproxy",
        "gateway_service",
        "engine_vllm",
        "engine_tgi",
        "engine_trtllm",
    }


def test_node_targets_cover_every_host_with_labels(rendered):
    node = targets(jobs(rendered)["node"])
    assert node["10.0.0.11:9100"] == {
        "site": "onprem",
        "host": "gpu-1",
        "rack": "rack-a",
        "gpu_node": "true",
    }
    assert node["10.0.0.12:9100"]["gpu_node"] == "true"
    assert node["10.0.0.21:9100"]["gpu_node"] == "false"
    assert "10.0.0.41:9100" in node
    assert len(node) == 6


def test_gpu_and_gateway_targets(rendered):
    all_jobs = jobs(rendered)
    assert set(targets(all_jobs["dcgm"])) == {"10.0.0.11:9400", "10.0.0.12:9400"}
    assert set(targets(all_jobs["haproxy"])) == {"10.0.0.21:8405", "10.0.0.22:8405"}
    # Only the gateway that runs the cache service.
    assert set(targets(all_jobs["gateway_service"])) == {"10.0.0.21:8081"}


def test_engine_instances_by_type(rendered):
    all_jobs = jobs(rendered)
    vllm = targets(all_jobs["engine_vllm"])
    # gpu-1 from its engine_instances fact; cpu-engine-1, not in the run, from its variables.
    assert set(vllm) == {"10.0.0.11:8000", "10.0.0.11:8001", "10.0.0.13:8000", "10.0.0.13:8001"}
    assert vllm["10.0.0.11:8001"]["engine_instance"] == "llama-1"
    assert vllm["10.0.0.13:8001"]["host"] == "cpu-engine-1"
    assert vllm["10.0.0.11:8001"]["model"] == "llama"
    assert all_jobs["engine_vllm"]["metrics_path"] == "/metrics"
    assert set(targets(all_jobs["engine_tgi"])) == {"10.0.0.11:8002"}
    assert all_jobs["engine_trtllm"]["metrics_path"] == "/prometheus/metrics"
    relabel = all_jobs["engine_trtllm"]["metric_relabel_configs"][0]
    assert relabel["replacement"] == "trtllm_$1"


def test_retention_and_listen_address_reach_the_command_line(rendered):
    args = (rendered / "prometheus-defaults").read_text()
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--web.listen-address=0.0.0.0:9090" in args
    assert "--storage.tsdb.retention.size" not in args


def test_overrides_select_groups_and_secure_node_scrapes(tmp_path):
    out = render(
        tmp_path,
        {
            "prometheus_scrape_groups": ["node", "engines"],
            "prometheus_scrape_overrides": {
                "node": {
                    "scheme": "https",
                    "ca_file": "/etc/prometheus/ca.pem",
                    "basic_auth_username": "prometheus",
                    "basic_auth_password": "not-a-real-password",
                }
            },
            "prometheus_retention_size": "500GB",
            "prometheus_external_labels": {"region": "eu-west"},
        },
    )
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    all_jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "dcgm" not in all_jobs and "haproxy" not in all_jobs
    node = all_jobs["node"]
    assert node["scheme"] == "https"
    assert node["tls_config"] == {"ca_file": "/etc/prometheus/ca.pem"}
    assert node["basic_auth"]["username"] == "prometheus"
    assert config["global"]["external_labels"] == {"site": "onprem", "region": "eu-west"}
    assert "--storage.tsdb.retention.size=500GB" in (out / "prometheus-defaults").read_text()


def test_alertmanager_routes_to_receivers(tmp_path):
    out = render(
        tmp_path,
        {
            "prometheus_alertmanager_receivers": [
                {"name": "oncall", "url": "https://hooks.example.internal/oncall"},
                {
                    "name": "gpu-team",
                    "url": "https://hooks.example.internal/gpu",
                    "send_resolved": False,
                    "matchers": ['alertname=~"Gpu.*"'],
                },
            ]
        },
    )
    config = yaml.safe_load((out / "alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "oncall"
    assert config["route"]["routes"] == [
        {"receiver": "gpu-team", "matchers": ['alertname=~"Gpu.*"']}
    ]
    receivers = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    assert receivers["gpu-team"] == {
        "url": "https://hooks.example.internal/gpu",
        "send_resolved": False,
    }
    assert receivers["oncall"]["send_resolved"] is True


def test_alertmanager_without_receivers_discards(rendered):
    config = yaml.safe_load((rendered / "alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "discard"
    assert config["receivers"] == [{"name": "discard"}]


def test_engines_with_tls_are_scraped_over_https_with_the_site_ca(rendered, tmp_path):
    vllm_job = jobs(rendered)["engine_vllm"]
    vllm = targets(vllm_job)
    # cpu-engine-1's instances (engine_tls by default) over HTTPS; gpu-1's fact has no tls.
    assert vllm["10.0.0.13:8000"]["__scheme__"] == "https"
    assert "__scheme__" not in vllm["10.0.0.11:8000"]
    assert vllm_job["scheme"] == "http"
    assert vllm_job["tls_config"] == {"ca_file": "/etc/onprem-llm/pki/ca.crt"}
    assert "tls_config" not in jobs(rendered)["engine_tgi"]
    # With engine_tls off, plain HTTP and no CA.
    INVENTORY["all"]["children"]["engine_nodes"]["hosts"]["cpu-engine-1"]["engine_tls"] = False
    try:
        plain = jobs(render(tmp_path))["engine_vllm"]
    finally:
        del INVENTORY["all"]["children"]["engine_nodes"]["hosts"]["cpu-engine-1"]["engine_tls"]
    assert "__scheme__" not in targets(plain)["10.0.0.13:8000"]
    assert "tls_config" not in plain


def test_web_interfaces_serve_tls_with_bcrypt_hashes_of_the_users(rendered):
    import bcrypt

    web = yaml.safe_load((rendered / "web-config.yml").read_text())
    assert web["tls_server_config"]["cert_file"] == "/etc/prometheus/tls/server.crt"
    assert web["tls_server_config"]["min_version"] == "TLS12"
    hashes = web["basic_auth_users"]
    assert set(hashes) == set(WEB_USERS)
    for user, password in WEB_USERS.items():
        assert hashes[user].startswith("$2b$10$")
        assert bcrypt.checkpw(password.encode(), hashes[user].encode())
    assert hashes["operator"] != hashes["grafana"]
    # promtool check web-config loads the key pair: the monitoring scenario runs it on the host.
    for defaults in ("prometheus-defaults", "alertmanager-defaults"):
        assert (
            "--web.config.file=/etc/prometheus/web-config.yml" in (rendered / defaults).read_text()
        )


def test_web_config_is_the_same_on_every_run(rendered, tmp_path):
    # A fixed salt per host and user: no change, no restart on a re-run.
    again = render(tmp_path)
    assert (again / "web-config.yml").read_text() == (rendered / "web-config.yml").read_text()


def test_prometheus_signs_in_to_itself_and_alertmanager_over_tls(rendered):
    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    client = {
        "tls_config": {"ca_file": "/etc/onprem-llm/pki/ca.crt"},
        "basic_auth": {"username": "grafana", "password": WEB_USERS["grafana"]},
    }
    alertmanager = config["alerting"]["alertmanagers"][0]
    assert alertmanager["scheme"] == "https"
    assert {key: alertmanager[key] for key in client} == client
    for name in ("prometheus", "alertmanager"):
        job = jobs(rendered)[name]
        assert job["scheme"] == "https"
        assert {key: job[key] for key in client} == client
    # node_exporter serves TLS with the host's site certificate: checked against the site CA.
    node = jobs(rendered)["node"]
    assert node["scheme"] == "https"
    assert node["tls_config"] == {"ca_file": "/etc/onprem-llm/pki/ca.crt"}
    assert "basic_auth" not in node


def test_plain_http_web_has_no_sign_in(tmp_path):
    out = render(
        tmp_path,
        {
            "prometheus_web_tls_cert_file": "",
            "prometheus_web_tls_key_file": "",
            "prometheus_web_users": {},
            "prometheus_web_internal_user": "",
        },
    )
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert config["alerting"]["alertmanagers"][0]["scheme"] == "http"
    assert "basic_auth" not in config["alerting"]["alertmanagers"][0]
    assert "--web.config.file" not in (out / "prometheus-defaults").read_text()
