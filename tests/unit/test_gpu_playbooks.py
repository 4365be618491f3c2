"""The day-2 GPU playbooks: driver_upgrade.yml converges exactly the roles of gpu_nodes.yml, one
node at a time and stopping at the first failure; validate.yml runs the gates on gpu_nodes."""

from __future__ import annotations

from pathlib import Path

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def plays(name: str) -> list[dict]:
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def role_names(play: dict) -> list[str]:
    return [role["role"] if isinstance(role, dict) else role for role in play["roles"]]


def test_driver_upgrade_converges_the_gpu_nodes_roles_in_order():
    (gpu_nodes,) = plays("gpu_nodes.yml")
    upgrade = plays("driver_upgrade.yml")[-1]
    assert role_names(upgrade) == role_names(gpu_nodes)
    # Validation is the last step of each node, before the next one starts.
    assert role_names(upgrade)[-1] == "onprem.llm.gpu_validate"


def test_driver_upgrade_goes_one_node_at_a_time_and_stops_at_a_failure():
    validate_input, upgrade = plays("driver_upgrade.yml")
    assert validate_input["ansible.builtin.import_playbook"] == "validate_input.yml"
    assert upgrade["serial"] == "{{ driver_upgrade_serial | default(1) }}"
    assert upgrade["max_fail_percentage"] == 0
    drain = upgrade["pre_tasks"][0]
    assert drain["ansible.builtin.include_tasks"] == "{{ __driver_upgrade_drain }}"
    undrain = upgrade["post_tasks"][0]
    assert undrain["ansible.builtin.include_tasks"] == "{{ __driver_upgrade_undrain }}"
    # Engine nodes are drained unless the operator turns the hooks off.
    assert "tasks/engine_host_drain.yml" in upgrade["vars"]["__driver_upgrade_drain"]
    assert "tasks/engine_host_undrain.yml" in upgrade["vars"]["__driver_upgrade_undrain"]


def test_validate_runs_the_gates_on_gpu_nodes_and_fetches_reports():
    (play,) = plays("validate.yml")
    assert play["hosts"] == "{{ validate_hosts | default('gpu_nodes') }}"
    assert role_names(play) == ["onprem.llm.gpu_validate"]
    assert "validate_report_dir" in play["vars"]["gpu_validate_fetch_dir"]
