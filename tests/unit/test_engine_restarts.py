"""Which engine instances restart at once and which wait for site.yml's rolling restart: the engine
role's own expressions (roles/engine/vars/main.yml), evaluated by ansible-playbook with the
results its tasks register. The restart itself, under load, is the serving scenario's
test_a_changed_engine_setting_restarts_each_instance_in_turn_under_load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

INSTANCES = [
    {"index": 0, "name": "gpu-1-0", "unit": "onprem-llm-engine@0.service"},
    {"index": 1, "name": "gpu-1-1", "unit": "onprem-llm-engine@1.service"},
    {"index": 12, "name": "gpu-1-12", "unit": "onprem-llm-engine@12.service"},
]
EXPRESSIONS = ["_engine_restart_deferred", "_engine_restart_now", "_engine_restart_serving"]


def _registered(changed_indexes: list[int]) -> dict:
    """What the role's settings and command tasks register: one result per instance."""
    return {
        "results": [
            {"item": instance, "changed": instance["index"] in changed_indexes}
            for instance in INSTANCES
        ]
    }


def evaluate(
    role_debug_messages, tmp_path: Path, cases: dict[str, dict], gateways: list[str]
) -> dict[str, dict]:
    """Each case's variables (as task variables) and the role's expressions evaluated with them."""
    inventory = {"all": {"hosts": {"localhost": {}}, "children": {"gateways": {"hosts": {}}}}}
    for gateway in gateways:
        inventory["all"]["children"]["gateways"]["hosts"][gateway] = {}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    tasks = [
        {
            "name": name,
            "ansible.builtin.debug": {
                "msg": {expression: "{{ " + expression + " }}" for expression in EXPRESSIONS}
                | {"pending": "{{ _engine_restart_pending_names }}"}
            },
            "vars": {
                "__engine_instance_settings": _registered(case.get("settings_changed", [])),
                "__engine_instance_commands": _registered(case.get("commands_changed", [])),
                # What `find /run ... -name 'onprem-llm-engine@*.restart-pending'` printed.
                "__engine_restart_pending_files": {"stdout_lines": case.get("marks", [])},
                **case.get("vars", {}),
            },
        }
        for name, case in cases.items()
    ]
    return role_debug_messages(
        "engine",
        "Evaluate the engine role's restart expressions",
        tasks,
        play_vars={"engine_instances": INSTANCES},
        inventory=str(tmp_path / "inventory.yml"),
    )


def _names(instances: list[dict]) -> list[str]:
    return [instance["name"] for instance in instances]


@pytest.fixture(scope="module")
def with_gateways(role_debug_messages, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    states = {"stdout_lines": ["active", "inactive", "activating"]}
    cases = {
        "one instance's settings changed, it serves": {
            "settings_changed": [0],
            "vars": {"__engine_restart_states": {"stdout_lines": ["active"]}},
        },
        "the unit changed, instances in every state": {
            "vars": {"__engine_restart_all": True, "__engine_restart_states": states},
        },
        "a command changed, the instance is stopped": {
            "commands_changed": [12],
            "vars": {"__engine_restart_states": {"stdout_lines": ["inactive"]}},
        },
        "immediate": {
            "vars": {
                "engine_restart_strategy": "immediate",
                "__engine_restart_all": True,
                "__engine_restart_states": {"skipped": True},
            },
        },
        "marks of two instances and of one no longer planned": {
            "vars": {"__engine_restart_states": {"skipped": True}},
            "marks": [
                "/run/onprem-llm-engine@1.restart-pending",
                "/run/onprem-llm-engine@12.restart-pending",
                "/run/onprem-llm-engine@7.restart-pending",
            ],
        },
    }
    return evaluate(
        role_debug_messages, tmp_path_factory.mktemp("restarts"), cases, ["gw-1", "gw-2"]
    )


def test_a_serving_instance_whose_settings_changed_waits_for_the_rolling_restart(with_gateways):
    result = with_gateways["one instance's settings changed, it serves"]
    assert result["_engine_restart_deferred"] is True
    assert _names(result["_engine_restart_serving"]) == ["gpu-1-0"]
    assert result["_engine_restart_now"] == []


def test_a_shared_change_defers_only_the_serving_instances(with_gateways):
    # An instance that is starting or crash-looping serves nothing: it restarts at once.
    result = with_gateways["the unit changed, instances in every state"]
    assert _names(result["_engine_restart_serving"]) == ["gpu-1-0"]
    assert _names(result["_engine_restart_now"]) == ["gpu-1-1", "gpu-1-12"]


def test_a_stopped_instance_restarts_at_once(with_gateways):
    result = with_gateways["a command changed, the instance is stopped"]
    assert result["_engine_restart_serving"] == []
    assert _names(result["_engine_restart_now"]) == ["gpu-1-12"]


def test_immediate_restarts_every_concerned_instance_at_once(with_gateways):
    result = with_gateways["immediate"]
    assert result["_engine_restart_deferred"] is False
    assert result["_engine_restart_serving"] == []
    assert _names(result["_engine_restart_now"]) == _names(INSTANCES)


def test_marks_name_the_planned_instances_waiting(with_gateways):
    # Two digits, and a mark of an instance no longer planned (its unit is stopped) is ignored.
    result = with_gateways["marks of two instances and of one no longer planned"]
    assert result["pending"] == ["gpu-1-1", "gpu-1-12"]
    assert result["_engine_restart_now"] == []


def test_without_gateways_every_restart_is_immediate(role_debug_messages, tmp_path: Path):
    cases = {
        "no gateways": {
            "vars": {"__engine_restart_all": True, "__engine_restart_states": {"skipped": True}}
        }
    }
    result = evaluate(role_debug_messages, tmp_path, cases, [])["no gateways"]
    assert result["_engine_restart_deferred"] is False
    assert _names(result["_engine_restart_now"]) == _names(INSTANCES)
