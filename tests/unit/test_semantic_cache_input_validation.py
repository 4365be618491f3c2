"""The semantic cache's input: bad settings fail the validation play before any host changes,
naming the variable; an embedding model is served like any other model (vLLM's pooling runner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gateway_site import REDIS_CACHE_PASSWORD, gateway_site, make_wheel
from onprem_llm.collection_utils import _engine_command, _engine_instances

PASSWORD = REDIS_CACHE_PASSWORD
CPU_ENGINE = {
    "engine_mode": "native",
    "engine_device": "cpu",
    "engine_native_wheelhouse": "/srv/wheelhouse",
}


@pytest.fixture
def wheel(tmp_path: Path) -> str:
    return make_wheel(tmp_path)


def inventory(wheel: str, semantic: dict[str, Any], embed_task: str = "embed") -> dict:
    gateway = {
        "gateway_service_enabled": True,
        "gateway_service_wheel": wheel,
        "gateway_service_semantic_tenants": {"team-a": {"models": ["tiny-llama"]}},
        "gateway_service_semantic_embedding_model": "minilm",
        **semantic,
    }
    engines = {
        "engine-1": {
            **CPU_ENGINE,
            "engine_model": {"name": "tiny-llama"},
            "engine_model_source": {"type": "path", "path": "/srv/tiny"},
        },
        "embedder-1": {
            **CPU_ENGINE,
            "engine_model": {"name": "minilm", "task": embed_task},
            "engine_model_source": {"type": "path", "path": "/srv/minilm"},
        },
    }
    return gateway_site({"gateway-1": gateway}, engine_nodes={"hosts": engines})


def test_a_site_with_an_embedding_model_and_the_semantic_cache_passes(validate_input, wheel):
    result = validate_input(inventory(wheel, {}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr


BAD_INPUT = {
    "threshold above 1": (
        {"gateway_service_semantic_threshold": 1.2},
        ["gateway_service_semantic_threshold must be a cosine similarity above 0 and at most 1"],
    ),
    "threshold below the floor": (
        {"gateway_service_semantic_threshold": 0.9},
        ["gateway_service_semantic_threshold (0.9) is below gateway_service_semantic_threshold_"],
    ),
    "a tenant below the floor": (
        {"gateway_service_semantic_tenants": {"team-a": {"threshold": 0.8}}},
        ["gateway_service_semantic_tenants['team-a'].threshold must be a cosine similarity from"],
    ),
    "a tenant's unknown key": (
        {"gateway_service_semantic_tenants": {"team-a": {"modles": ["tiny-llama"]}}},
        ["gateway_service_semantic_tenants['team-a'] must be a mapping with models"],
    ),
    "a model not served": (
        {"gateway_service_semantic_tenants": {"team-a": {"models": ["llama-405b"]}}},
        ["gateway_service_semantic_tenants['team-a'].models: ['llama-405b'] are not served"],
    ),
    "no embedding model": (
        {"gateway_service_semantic_embedding_model": ""},
        ["gateway_service_semantic_embedding_model is empty"],
    ),
    "embedding model not served": (
        {"gateway_service_semantic_embedding_model": "bge-m3"},
        ["gateway_service_semantic_embedding_model: 'bge-m3' is not served at this site"],
    ),
    "a chat model as embedding model": (
        {"gateway_service_semantic_embedding_model": "tiny-llama"},
        ["'tiny-llama' is not an embedding model (engine_model.task: embed)"],
    ),
    "dimensions zero": (
        {"gateway_service_semantic_dimensions": 0},
        ["gateway_service_semantic_dimensions must be the embedding model's dimension"],
    ),
    "exact cache off": (
        {"gateway_service_cache_enabled": False},
        ["gateway_service_cache_enabled is false: the semantic cache answers from the exact"],
    ),
}


def test_every_bad_semantic_cache_input_is_reported_in_one_run(
    validate_input, assert_rejected, wheel
):
    """One gateway per mistake, one validation run, as an operator's inventory is checked."""
    site = inventory(wheel, {})
    good = site["all"]["children"]["gateways"]["hosts"].pop("gateway-1")
    cases = sorted(BAD_INPUT)
    for index, case in enumerate(cases):
        site["all"]["children"]["gateways"]["hosts"][f"gateway-{index}"] = {
            **good,
            **BAD_INPUT[case][0],
        }
    result = validate_input(site)
    output = assert_rejected(result, [], "several bad gateways")
    for index, case in enumerate(cases):
        assert f"gateway-{index}" in output, case
        for text in BAD_INPUT[case][1]:
            assert text in output, f"{case}: {text!r} not in output:\n{output}"
    assert PASSWORD not in output


def test_an_unknown_model_task_is_refused(validate_input, assert_rejected, wheel):
    result = validate_input(inventory(wheel, {}, embed_task="rerank"))
    assert_rejected(result, ["engine_model.task: expected generate or embed, got 'rerank'"], "task")


def test_an_embedding_model_is_served_by_vllms_pooling_runner() -> None:
    settings = {
        "engine_type": "vllm",
        "engine_device": "cpu",
        "engine_model": {"name": "minilm", "task": "embed"},
        "engine_bind_address": "10.0.0.5",
        "engine_cpu_instances": 1,
        "engine_tls": False,
        "engine_base_port": 8000,
    }
    [instance] = _engine_instances.host_instances("embedder-1", settings)
    assert instance["model_settings"]["engine_model"]["task"] == "embed"
    spec = {
        "flags": {"model": "--model", "runner": "--runner", "host": "--host", "port": "--port"},
        "container_command": [],
        "model_positional": False,
    }
    args = _engine_command.engine_arguments(
        instance,
        {
            "type_spec": spec,
            "dropped_flags": [],
            "mode": "native",
            "model_store_path": "/srv/models",
            "extra_args": [],
            "shutdown_grace_seconds": 10,
        },
    )
    assert args[args.index("--runner") + 1] == "pooling"
    with pytest.raises(_engine_instances.EngineInputError, match=r"engine_model\.task: embed is"):
        _engine_instances.host_instances("embedder-1", {**settings, "engine_type": "tgi"})


def test_the_gateways_configuration_names_the_embedding_models_backend(
    run_role_play, tmp_path: Path
) -> None:
    """What the role writes is what the service reads: the semantic section passes its
    parser, with the HAProxy backend of the embedding model."""
    import json

    import yaml

    from onprem_llm.gateway.config import CacheConfig, _Section, _semantic

    hosts = tmp_path / "hosts.yml"
    site = inventory("/unused.whl", {})
    site["all"]["children"]["gateways"]["hosts"] = {"localhost": {"ansible_connection": "local"}}
    hosts.write_text(yaml.safe_dump(site))
    out = tmp_path / "config.json"
    gateway = site["all"]["children"]["gateways"]
    gateway_vars = {"gateway_service_semantic_tenants": {"team-a": None, "team-b": {}}}
    gateway_vars["gateway_service_semantic_embedding_model"] = "minilm"
    run_role_play(
        "gateway_service",
        "render the configuration",
        [
            {
                "name": "Render",
                "ansible.builtin.template": {
                    "src": str(Path("roles/gateway_service/templates/config.json.j2").resolve()),
                    "dest": str(out),
                    "mode": "0600",
                },
                # Task variables win over the role files the play loads.
                "vars": gateway_vars,
            }
        ],
        play_vars={"redis_cache_password": PASSWORD},
        inventory=str(hosts),
    )
    assert gateway
    semantic = json.loads(out.read_text())["semantic"]
    assert semantic["embedding_backend"] == "model_minilm"
    assert semantic["tenants"] == {"team-a": {}, "team-b": {}}
    cache = CacheConfig(True, 3600, 86400, 1, "tenant", frozenset(), frozenset(), 0, False)
    parsed = _semantic(_Section(semantic, "semantic"), cache)
    assert parsed is not None
    assert parsed.dimensions == 384
    assert parsed.threshold == parsed.threshold_floor == 0.95
    assert parsed.backend_header == "X-Onprem-Backend"


def _redis_preflight_tasks() -> list[dict]:
    """The redis role's two preflight tasks of the semantic cache, as the role has them."""
    import yaml

    tasks = yaml.safe_load(Path("roles/redis/tasks/preflight.yml").read_text())
    names = ("Read the Redis version apt has", "Check Redis has vector sets for the semantic cache")
    return [task for task in tasks if task.get("name") in names]


def test_redis_7_is_refused_before_any_change(role_debug_messages) -> None:
    """This machine is Debian 12: apt offers redis-server 7.0, and the role refuses it."""
    read, check = _redis_preflight_tasks()
    messages = role_debug_messages(
        "redis",
        "the semantic cache on Debian 12",
        [
            {
                "name": "Preflight",
                "block": [read, check],
                "rescue": [
                    {
                        "name": "Refusal",
                        "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"},
                    }
                ],
                "vars": {"redis_semantic_cache": True},
            }
        ],
    )
    refusal = messages["Refusal"]
    assert "gateway_service_semantic_tenants" in refusal
    assert "Redis 8" in refusal and "has Redis 7" in refusal


@pytest.mark.parametrize(
    ("policy", "release", "accepted"),
    [
        (
            "redis-server:\n  Installed: 5:8.0.2-3+deb13u3\n  Candidate: 5:8.0.2-3+deb13u3\n",
            "13",
            True,
        ),
        # A mirror with Redis 8 for Debian 12.
        ("redis-server:\n  Installed: (none)\n  Candidate: 6:8.2.1-1rl1~bookworm1\n", "12", True),
        (
            "redis-server:\n  Installed: 5:7.0.15-1~deb12u10\n  Candidate: 5:7.0.15-1~deb12u10\n",
            "12",
            False,
        ),
        # No package lists yet: the release decides.
        ("N: Unable to locate package redis-server\n", "13", True),
        ("N: Unable to locate package redis-server\n", "12", False),
    ],
)
def test_redis_versions_the_semantic_cache_accepts(
    role_debug_messages, policy: str, release: str, accepted: bool
) -> None:
    _read, check = _redis_preflight_tasks()
    check = {**check, "vars": {**check["vars"], "redis_semantic_cache": True}}
    check["vars"]["__redis_policy"] = {"stdout": policy}
    check["vars"]["ansible_facts"] = {"distribution_major_version": release}
    messages = role_debug_messages(
        "redis",
        "the semantic cache's Redis version",
        [
            {
                "name": "Preflight",
                "block": [check, {"name": "Outcome", "ansible.builtin.debug": {"msg": "accepted"}}],
                "rescue": [{"name": "Outcome", "ansible.builtin.debug": {"msg": "refused"}}],
            }
        ],
    )
    assert messages["Outcome"] == ("accepted" if accepted else "refused")
