"""site.yml is the one group -> role map: the validation reads it, and finds the roles a host
gets the way Ansible does (groups, then each role's condition)."""

from __future__ import annotations

from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    SITE_ROLES,
    SiteRole,
)


def test_the_validation_reads_every_play_of_site_yml_in_order():
    assert (
        SiteRole("common", None, None),
        SiteRole("data_volume", None, None),
        SiteRole("firewall", None, None),
        SiteRole("pki", None, None),
        SiteRole("node_exporter", None, None),
        SiteRole("nvidia_driver", "gpu_nodes", None),
        SiteRole("cuda_toolkit", "gpu_nodes", None),
        SiteRole("nccl", "gpu_nodes", None),
        SiteRole("container_runtime", "gpu_nodes", None),
        SiteRole("dcgm", "gpu_nodes", None),
        SiteRole("gpu_validate", "gpu_nodes", None),
        SiteRole("model_store", "engine_nodes", None),
        SiteRole("engine", "engine_nodes", None),
        SiteRole("redis", "redis", None),
        SiteRole("haproxy", "gateways", None),
        SiteRole("gateway_service", "gateways", "gateway_service_enabled | default(false) | bool"),
        SiteRole(
            "keepalived", "gateways", "keepalived_virtual_ipaddress | default('') | length > 0"
        ),
        SiteRole("prometheus", "monitoring", None),
        SiteRole("audit", None, None),
    ) == SITE_ROLES
