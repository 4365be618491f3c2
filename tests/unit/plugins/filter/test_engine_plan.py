"""The onprem.llm.engine_plan filter: a thin wrapper that fails with the placement's reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.engine_plan import FilterModule

REPO_ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO_ROOT / "collections"
BIN = Path(sys.executable).parent

engine_plan = FilterModule().filters()["engine_plan"]
MODEL = {"name": "llama-4-maverick", "params_b": 400, "dtype": "fp8", "context_length": 8192}
H200 = {"gpu_count": 8, "gpu_memory_gb": 141, "nvlink_domain_size": 8}


def test_returns_the_placement() -> None:
    plan = engine_plan(MODEL, H200, base_port=8000)
    assert plan["tensor_parallel_size"] == 4
    assert [(i["gpus"], i["port"]) for i in plan["instances"]] == [
        ([0, 1, 2, 3], 8000),
        ([4, 5, 6, 7], 8001),
    ]


def test_placement_that_does_not_fit_fails_with_the_reason() -> None:
    h100 = {"gpu_count": 8, "gpu_memory_gb": 80}
    with pytest.raises(AnsibleFilterError, match=r"engine_plan: llama-4-maverick does not fit"):
        engine_plan({**MODEL, "dtype": "bf16"}, h100)


@pytest.mark.parametrize(
    ("model", "host", "options", "message"),
    [
        (MODEL, H200, {"tensor_parallel_size": 16}, "tensor_parallel_size: 16 is more than"),
        ({**MODEL, "dtype": "fp9"}, H200, {}, "model.dtype: unknown format 'fp9'"),
        (MODEL, {**H200, "gpu_count": -1}, {}, "host.gpu_count: must be greater than 0"),
        (MODEL, H200, {"ports": [8000, 8000]}, "ports[1]: port 8000 is listed twice"),
        (MODEL, H200, {"reserved_ports": [8001]}, "base_port: engine ports overlap"),
    ],
)
def test_bad_input_fails_naming_the_field(
    model: dict, host: dict, options: dict, message: str
) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        engine_plan(model, host, **options)
    assert message in str(raised.value)


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


PLAYBOOK = """
- name: Plan engines
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Show the placement
      ansible.builtin.debug:
        msg: "{{ model | onprem.llm.engine_plan(host) | to_json }}"

    - name: Reject a model without parameters
      block:
        - name: Place it
          ansible.builtin.debug:
            msg: "{{ model | combine({'params_b': 0}) | onprem.llm.engine_plan(host) }}"
      rescue:
        - name: Show why
          ansible.builtin.debug:
            msg: "rescued: {{ ansible_failed_result.msg }}"
"""


ANSIBLE_PLAYBOOK = ["ansible-playbook", "-i", "localhost,", "-c", "local"]


def test_filter_runs_in_a_playbook_and_fails_cleanly(tmp_path: Path) -> None:
    playbook = tmp_path / "plan.yml"
    playbook.write_text(PLAYBOOK)
    result = subprocess.run(
        [*ANSIBLE_PLAYBOOK, str(playbook), "-e", json.dumps({"model": MODEL, "host": H200})],
        env=_ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '\\"cuda_visible_devices\\": \\"4,5,6,7\\"' in result.stdout
    assert "rescued: " in result.stdout
    assert "engine_plan: model.params_b: must be greater than 0" in result.stdout


def test_documentation_loads_with_ansible_doc() -> None:
    result = subprocess.run(
        ["ansible-doc", "-t", "filter", "--json", "onprem.llm.engine_plan"],
        env=_ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["onprem.llm.engine_plan"]
    assert doc["doc"]["name"] == "engine_plan"
    assert {"tensor_parallel_size", "base_port", "reserved_ports"} <= set(doc["doc"]["options"])
    assert "instances" in doc["return"]["_value"]["contains"]
