"""Every internal link is TLS unless the inventory names it in onprem_llm_plaintext_links: turning
TLS off for one (a role's setting, or Prometheus scraping a group over http) is refused naming
the link to list, and accepted once it is listed. The rules are called on a host's variables
(role defaults and vars under the inventory's values, as in a play)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.plugin_utils import _input_rules as rules
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    HostVariables,
    layered,
)

ROLES = Path(__file__).resolve().parents[2] / "roles"
GROUPS = {"all": ["host-1"]}


def host(role: str, inventory: dict) -> HostVariables:
    def part(name: str) -> dict:
        path = ROLES / role / name / "main.yml"
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}

    return HostVariables("host-1", layered(part("defaults"), inventory, part("vars")))


# case -> (role, rule, settings that turn TLS off, the link to name)
PLAINTEXT = {
    "engines": ("engine", rules.engine_tls, {"engine_tls": False}, "engines"),
    "TGI engine": (
        "engine",
        rules.engine_tls,
        {"engine_tls": False, "engine_type": "tgi"},
        "engines",
    ),
    "node_exporter": (
        "node_exporter",
        rules.node_exporter_tls,
        {"node_exporter_tls_cert_file": "", "node_exporter_tls_key_file": ""},
        "node_exporter",
    ),
    "dcgm-exporter": (
        "dcgm",
        rules.dcgm_exporter_tls,
        {"dcgm_exporter_tls_cert_file": "", "dcgm_exporter_tls_key_file": ""},
        "dcgm_exporter",
    ),
    "Prometheus web": (
        "prometheus",
        rules.prometheus_web,
        {"prometheus_web_tls_cert_file": "", "prometheus_web_tls_key_file": ""},
        "prometheus_web",
    ),
    "Prometheus scraping dcgm over http": (
        "prometheus",
        rules.prometheus_plaintext_scrapes,
        {"prometheus_scrape_overrides": {"dcgm": {"scheme": "http"}}},
        "dcgm_exporter",
    ),
    "Prometheus scraping HAProxy over http": (
        "prometheus",
        rules.prometheus_plaintext_scrapes,
        {"prometheus_scrape_overrides": {"haproxy": {"scheme": "http", "port": 8404}}},
        "haproxy_internal",
    ),
    "HAProxy internal listener": (
        "haproxy",
        rules.haproxy_internal_tls,
        {"haproxy_stats_tls": False},
        "haproxy_internal",
    ),
    "gateway service metrics": (
        "gateway_service",
        rules.gateway_service_metrics_tls,
        {"gateway_service_enabled": True, "gateway_service_metrics_tls": False},
        "gateway_service_metrics",
    ),
    "Redis exporter": (
        "redis",
        rules.redis_exporter_tls,
        {"redis_exporter_tls": False},
        "redis_exporter",
    ),
}


def plaintext_errors(role: str, rule, settings: dict) -> list[str]:
    return [m for m in rule(host(role, settings), GROUPS) if "onprem_llm_plaintext_links" in m]


@pytest.mark.parametrize("case", sorted(PLAINTEXT))
def test_tls_off_is_refused_unless_the_link_is_named(case):
    role, rule, settings, link = PLAINTEXT[case]
    assert plaintext_errors(role, rule, {}) == [], "TLS is on by default"
    refused = plaintext_errors(role, rule, settings)
    assert len(refused) == 1, refused
    assert "clear text" in refused[0]
    assert f"onprem_llm_plaintext_links: [{link}]" in refused[0]
    named = {**settings, "onprem_llm_plaintext_links": [link]}
    assert plaintext_errors(role, rule, named) == []
    # Naming another link does not do.
    other = next(name for name in rules.PLAINTEXT_LINKS if name != link)
    assert plaintext_errors(role, rule, {**settings, "onprem_llm_plaintext_links": [other]})


def test_a_plaintext_exporter_without_tls_is_not_refused_when_it_does_not_run():
    off = {"redis_exporter_enabled": False, "redis_exporter_tls": False}
    assert plaintext_errors("redis", rules.redis_exporter_tls, off) == []
    off = {"gateway_service_enabled": False, "gateway_service_metrics_tls": False}
    assert plaintext_errors("gateway_service", rules.gateway_service_metrics_tls, off) == []


@pytest.mark.parametrize("links", [["engine"], ["engines", "redis"], "engines"])
def test_unknown_link_names_are_refused(links):
    found = list(
        rules.plaintext_links(host("common", {"onprem_llm_plaintext_links": links}), GROUPS)
    )
    assert len(found) == 1 and "onprem_llm_plaintext_links is a list of links" in found[0], found
