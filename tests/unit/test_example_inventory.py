"""The example production inventory (inventories/prod), loaded as Ansible loads it: every engine
host's model fits and gets the placement its group_vars comments state, the planner computes the
same, and the gateways' routing policy names only models and providers that exist."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.manager import VariableManager
from ansible_collections.onprem.llm.plugins.filter.engine_plan import FilterModule
from ansible_collections.onprem.llm.plugins.module_utils import _engine_instances, _hardware

from onprem_llm.catalog import MODELS, PLATFORMS

REPO_ROOT = Path(__file__).resolve().parents[2]
INVENTORY = REPO_ROOT / "inventories" / "prod"
# The vault is an example file here: its values stand in for the encrypted vault.yml.
VAULT_EXAMPLE = INVENTORY / "group_vars" / "all" / "vault.yml.example"
ENGINE_DEFAULTS = yaml.safe_load((REPO_ROOT / "roles/engine/defaults/main.yml").read_text())
ROUTING_VARIABLES = (
    "haproxy_api_keys",
    "haproxy_data_classes",
    "haproxy_default_data_class",
    "haproxy_cloud_providers",
    "haproxy_models",
    "haproxy_tenant_models",
)

engine_plan = FilterModule().filters()["engine_plan"]

# What each serving group must get per host. Usable memory per GPU = quoted GB x 0.9; an
# instance fits at TP t when weights / t + max(0.2 x weights / t, KV cache / min(t, KV heads))
# is within it (plugins/module_utils/_placement.py), and the smallest such power of two that
# divides the 40 query heads of Llama 4 wins. KV cache = 196,608 bytes/token x context.
EXPECTED = {
    # H200 126.9 GB usable. Maverick FP8 400 GB: TP 2 needs 200 + 40 GB; TP 4 needs 100 + 20 GB
    # (KV 25.8 GB / 4 = 6.4 GB, under the headroom) = 120 GB: 8 GPUs / 4 = 2 instances.
    "hgx_h200": {
        "model": "llama-4-maverick",
        "hosts": 4,
        "tensor_parallel_size": 4,
        "instances": 2,
        "max_model_len": 131072,
    },
    # H200 126.9 GB usable. bge-m3 0.568B x 2 bytes = 1.1 GB: TP 1, one instance per GPU.
    "embedding_nodes": {
        "model": "bge-m3",
        "hosts": 1,
        "tensor_parallel_size": 1,
        "instances": 8,
        "max_model_len": 8192,
    },
    # GB200 167.4 GB usable. Scout BF16 218 GB: TP 1 needs 218 + 51.5 GB; TP 2 needs 109 GB +
    # KV 51.5 GB / 2 = 134.8 GB: 4 GPUs / 2 = 2 instances per tray.
    "gb200_nvl72": {
        "model": "llama-4-scout",
        "hosts": 18,
        "tensor_parallel_size": 2,
        "instances": 2,
        "max_model_len": 262144,
    },
}
# The catalog preset each on-prem Llama model must match (the planner sizes from it).
CATALOG_PRESETS = {"hgx_h200": "llama-4-maverick", "gb200_nvl72": "llama-4-scout"}


@functools.cache
def site() -> tuple[InventoryManager, VariableManager, DataLoader, dict[str, Any]]:
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(INVENTORY)])
    variables = VariableManager(loader=loader, inventory=inventory)
    vault = loader.load_from_file(str(VAULT_EXAMPLE))
    return inventory, variables, loader, vault


def hosts_of(group: str) -> list[str]:
    return list(site()[0].get_groups_dict()[group])


def serving_group(host: str) -> str | None:
    """The group whose model a host serves: the deepest of EXPECTED it is in, as the deeper
    group's variables win in Ansible."""
    groups = [g for g in site()[0].get_host(host).get_groups() if g.name in EXPECTED]
    return max(groups, key=lambda g: g.depth).name if groups else None


def group_hosts(group: str) -> list[str]:
    return [host for host in hosts_of("engine_nodes") if serving_group(host) == group]


@functools.cache
def host_vars(host: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The named variables of a host, templated as in a play (vault from the example)."""
    inventory, variables, loader, vault = site()
    raw = variables.get_vars(host=inventory.get_host(host), include_hostvars=False)
    templar = Templar(loader, variables={**vault, **raw})
    return {name: templar.template(raw[name]) for name in names if name in raw}


def engine_settings(host: str) -> dict[str, Any]:
    return host_vars(host, (*_engine_instances.SETTINGS, *_engine_instances.HOST_INPUTS))


@functools.cache
def instances() -> dict[str, list[dict[str, Any]]]:
    """Every engine host's instances, by host, as the gateways and the engine role compute them."""
    hosts = hosts_of("engine_nodes")
    hostvars = {host: engine_settings(host) for host in hosts}
    by_host: dict[str, list[dict[str, Any]]] = {host: [] for host in hosts}
    for instance in _engine_instances.backends(hosts, hostvars, ENGINE_DEFAULTS, details=True):
        by_host[instance["host"]].append(instance)
    return by_host


def routing() -> dict[str, Any]:
    return host_vars(hosts_of("gateways")[0], ROUTING_VARIABLES)


def served_models() -> set[str]:
    return {instance["model"] for placed in instances().values() for instance in placed}


def test_every_engine_host_serves_one_of_the_three_groups() -> None:
    assert [h for h in hosts_of("engine_nodes") if serving_group(h) is None] == []
    assert [h for h, placed in instances().items() if not placed] == []
    for group, expected in EXPECTED.items():
        assert len(group_hosts(group)) == expected["hosts"], group
    # 4 x 2 Maverick + 1 x 8 bge-m3 + 18 x 2 Scout.
    assert sum(len(placed) for placed in instances().values()) == 52


@pytest.mark.parametrize("group", list(EXPECTED))
def test_model_fits_with_the_expected_instances(group: str) -> None:
    expected = EXPECTED[group]
    for host in group_hosts(group):
        placed = instances()[host]
        assert len(placed) == expected["instances"], host
        assert {i["tensor_parallel_size"] for i in placed} == {expected["tensor_parallel_size"]}
        assert {i["max_model_len"] for i in placed} == {expected["max_model_len"]}
        assert {i["model"] for i in placed} == {expected["model"]}
        # Every GPU of the host serves, none twice.
        gpus = sorted(gpu for i in placed for gpu in i["gpus"])
        profile = engine_settings(host)["nvidia_driver_profile"]
        assert gpus == list(range(_hardware.PROFILES[profile].gpus_per_node)), host


@pytest.mark.parametrize("group", list(EXPECTED))
def test_placement_agrees_with_the_engine_plan_filter(group: str) -> None:
    for host in group_hosts(group):
        settings = {**ENGINE_DEFAULTS, **engine_settings(host)}
        plan = engine_plan(
            settings["engine_model"],
            _hardware.profile_gpus(settings["nvidia_driver_profile"]),
            gpu_memory_utilization=settings["engine_gpu_memory_utilization"],
            base_port=settings["engine_base_port"],
        )
        placed = instances()[host]
        assert plan["tensor_parallel_size"] == placed[0]["tensor_parallel_size"], host
        assert plan["max_model_len"] == placed[0]["max_model_len"], host
        assert [(i["gpus"], i["port"]) for i in plan["instances"]] == [
            (i["gpus"], i["port"]) for i in placed
        ], host


@pytest.mark.parametrize("group", list(CATALOG_PRESETS))
def test_llama_figures_are_the_planner_catalog(group: str) -> None:
    preset = MODELS[CATALOG_PRESETS[group]]
    for host in group_hosts(group):
        settings = engine_settings(host)
        model = settings["engine_model"]
        assert model["params_b"] == preset.params_b, host
        assert model["kv_bytes_per_token"] == preset.kv_bytes_per_token, host
        assert model["attention_heads"] == preset.attention_heads, host
        assert model["kv_heads"] == preset.kv_heads, host
        assert model["context_length"] <= preset.context_length, host
        # The planner's platform has the GPUs the placement reads from the hardware table.
        platform = PLATFORMS[settings["nvidia_driver_profile"]]
        gpus = _hardware.profile_gpus(settings["nvidia_driver_profile"])
        assert (gpus["gpu_count"], gpus["gpu_memory_gb"]) == (
            platform.gpus_per_node,
            platform.gpu_memory_gb,
        ), host


def test_each_served_name_is_one_group() -> None:
    names = {
        group: {i["model"] for h in group_hosts(group) for i in instances()[h]}
        for group in EXPECTED
    }
    assert all(len(served) == 1 for served in names.values()), names
    assert len(set.union(*names.values())) == len(EXPECTED), names


def test_every_routed_model_is_served_or_goes_to_a_cloud() -> None:
    gateway = routing()
    models = gateway["haproxy_models"]
    allowed = gateway["haproxy_tenant_models"].values()
    for model in sorted(set(models).union(*allowed)):
        assert model in served_models() or models.get(model, {}).get("cloud"), model
    for model, policy in models.items():
        for provider in policy.get("cloud", []):
            assert provider in gateway["haproxy_cloud_providers"], (model, provider)
        # Spill-over is about waiting for engines: only a served model has any.
        if "spill_over_queue" in policy:
            assert model in served_models(), model


def test_every_provider_is_reachable_and_has_its_key() -> None:
    gateway = routing()
    classes = gateway["haproxy_data_classes"]
    assert gateway["haproxy_default_data_class"] in classes
    assert classes["restricted"]["cloud_regions"] == []
    for name, provider in gateway["haproxy_cloud_providers"].items():
        reachable = [
            data_class
            for data_class, spec in classes.items()
            if provider["region"] in spec["cloud_regions"] or "*" in spec["cloud_regions"]
        ]
        assert reachable, name
        assert provider["api_key"] == site()[3]["vault_haproxy_cloud_provider_keys"][name]


def test_tenants_of_the_model_lists_have_api_keys() -> None:
    gateway = routing()
    assert set(gateway["haproxy_tenant_models"]) <= set(gateway["haproxy_api_keys"])
