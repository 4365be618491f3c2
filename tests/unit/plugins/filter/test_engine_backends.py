"""The engine_instances and engine_backends filters: one placement for engine hosts and gateways."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.engine import FilterModule
from ansible_collections.onprem.llm.plugins.module_utils import (
    _engine_instances,
    _hardware,
    _placement,
)

# What makes instances of one served name the same model, for the default engine_model.
LLAMA_8B_SETTINGS = {
    "engine_model": {
        "name": "llama-3.1-8b-instruct",
        "params_b": 8,
        "dtype": "bf16",
        "context_length": 8192,
    },
    "max_model_len": 8192,
}

REPO_ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO_ROOT / "collections"
BIN = Path(sys.executable).parent
DEFAULTS = yaml.safe_load((REPO_ROOT / "roles/engine/defaults/main.yml").read_text())

FILTERS = FilterModule().filters()
engine_instances = FILTERS["engine_instances"]
engine_backends = FILTERS["engine_backends"]
LLAMA_70B = {"name": "llama-3.1-70b", "params_b": 70, "dtype": "bf16", "context_length": 8192}


def settings(**overrides):
    return {**_engine_instances.host_settings(DEFAULTS, {}), **overrides}


def test_role_defaults_of_the_settings_are_plain_values() -> None:
    for name in _engine_instances.SETTINGS:
        assert name in DEFAULTS, name
        assert "{{" not in json.dumps(DEFAULTS[name]), name


def test_h200_profile_gives_eight_instances_of_the_default_model() -> None:
    result = engine_instances(
        "h200-node-01",
        settings(nvidia_driver_profile="h200_hgx", ansible_host="10.20.1.11"),
    )
    assert [(i["name"], i["port"], i["gpus"]) for i in result[:2]] == [
        ("h200-node-01-0", 8000, [0]),
        ("h200-node-01-1", 8001, [1]),
    ]
    assert len(result) == 8
    assert result[7]["unit"] == "onprem-llm-engine@7.service"
    assert {i["address"] for i in result} == {"10.20.1.11"}
    assert {i["engine"] for i in result} == {"vllm"}
    assert result[0]["model"] == "llama-3.1-8b-instruct"
    assert result[0]["max_model_len"] == 8192


def _facts(profile: str) -> dict:
    """The onprem_gpu fact of a healthy host of a profile, as gpu_facts reports it."""
    entry = _hardware.PROFILES[profile]
    gpu = {"memory_total_mib": entry.gpu_memory_mib, "readable": True}
    return {
        "gpu_count": entry.gpus_per_node,
        "hardware_profile": profile,
        "gpus": [{**gpu, "index": i} for i in range(entry.gpus_per_node)],
    }


LLAMA_4_SCOUT_FP8 = {"name": "llama-4-scout", "params_b": 109, "dtype": "fp8",
                     "context_length": 8192}  # fmt: skip


@pytest.mark.parametrize("profile", list(_hardware.PROFILES))
@pytest.mark.parametrize("model", [None, LLAMA_70B, LLAMA_4_SCOUT_FP8])
def test_instances_are_the_same_with_and_without_gpu_facts(profile: str, model: dict) -> None:
    base = settings(nvidia_driver_profile=profile, ansible_host="10.20.1.11")
    if model:
        base["engine_model"] = model
    try:
        without = engine_instances("node", base)
    except AnsibleFilterError as error:  # does not fit: it must fail the same way with facts
        with pytest.raises(AnsibleFilterError, match="does not fit"):
            engine_instances("node", {**base, "onprem_gpu": _facts(profile)})
        assert "does not fit" in str(error)
        return
    assert engine_instances("node", {**base, "onprem_gpu": _facts(profile)}) == without
    assert engine_backends(["node"], {"node": base}, details=True) == without


def test_llama_4_scout_fp8_on_h200_no_longer_depends_on_facts() -> None:
    base = settings(nvidia_driver_profile="h200_hgx", engine_model=LLAMA_4_SCOUT_FP8)
    with_facts = engine_instances("node", {**base, "onprem_gpu": _facts("h200_hgx")})
    assert [i["tensor_parallel_size"] for i in with_facts] == [2] * 4
    assert with_facts == engine_instances("node", base)
    # What the reported 143771 MiB (150.8 GB) would have given: the disagreement this removes.
    from_facts = _placement.place(
        _placement.model_from_dict(LLAMA_4_SCOUT_FP8),
        _placement.host_from_dict(_facts("h200_hgx")),
    )
    assert (len(from_facts.instances), from_facts.tensor_parallel_size) == (8, 1)


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (_facts("h100_hgx"), "says h200_hgx but the host's GPUs read as h100_hgx"),
        (
            {**_facts("h200_hgx"), "unreadable_gpus": [3],
             "gpus": [{"memory_total_mib": 143771, "readable": i != 3} for i in range(8)]},
            "8 GPUs declared, the host has 7 readable (GPU 3 cannot be read)",
        ),
        (
            {**_facts("h200_hgx"), "gpus": [{"memory_total_mib": 81559}] * 8},
            "141 GB per GPU declared, the host's smallest GPU has 81559 MiB",
        ),
    ],
)  # fmt: skip
def test_gpu_facts_that_contradict_the_inventory_fail(facts: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        engine_instances("node", settings(nvidia_driver_profile="h200_hgx", onprem_gpu=facts))


def test_cpu_hosts_get_instances_without_gpus_on_the_facts_address() -> None:
    result = engine_instances(
        "cpu-1",
        settings(
            engine_device="cpu",
            engine_cpu_instances=2,
            engine_model={"name": "tiny", "context_length": 512},
            ansible_facts={"default_ipv4": {"address": "10.88.0.5"}},
            engine_gateway_weight=10,
        ),
    )
    assert [(i["port"], i["gpus"], i["address"], i["weight"]) for i in result] == [
        (8000, [], "10.88.0.5", 10),
        (8001, [], "10.88.0.5", 10),
    ]
    assert result[0]["max_model_len"] == 512


def test_bind_address_wins_over_ansible_host() -> None:
    result = engine_instances(
        "n",
        settings(
            engine_device="cpu",
            engine_bind_address="192.168.10.5",
            ansible_host="10.0.0.5",
            engine_ports=[9000],
        ),
    )
    assert [(i["address"], i["port"]) for i in result] == [("192.168.10.5", 9000)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine_tensor_parallel_size": 16}, "engine_tensor_parallel_size: 16 is more than"),
        ({"engine_ports": [8000, 8000]}, "engine_ports[1]: port 8000 is listed twice"),
        ({"engine_reserved_ports": [8003]}, "engine_base_port: engine ports overlap"),
        ({"engine_type": "sglang"}, "engine_type: expected one of vllm, trtllm, tgi"),
        ({"engine_device": "tpu"}, "engine_device: expected one of gpu, cpu"),
        (
            {"engine_model": {**LLAMA_70B, "params_b": 700}},
            "engine_model: llama-3.1-70b does not fit",
        ),
        ({"engine_model": {**LLAMA_70B, "dtype": "fp9"}}, "engine_model.dtype: unknown format"),
        ({"engine_instances_per_host": 9}, "engine_instances_per_host: 9 requested"),
        ({"nvidia_driver_profile": None}, "engine_host_gpus: the host's GPUs are unknown"),
        ({"engine_host_gpus": {"gpu_count": 0, "gpu_memory_gb": 80}}, "engine_host_gpus.gpu_count"),
    ],
)
def test_bad_input_names_the_variable(overrides: dict, message: str) -> None:
    base = settings(nvidia_driver_profile="h200_hgx")
    with pytest.raises(AnsibleFilterError) as raised:
        engine_instances("node-1", {**base, **overrides})
    assert message in str(raised.value)
    assert str(raised.value).startswith("node-1: ")


def test_backends_of_every_host_from_hostvars() -> None:
    hostvars = {
        "gpu-1": {"nvidia_driver_profile": "gb200_nvl72", "ansible_host": "10.1.0.1"},
        "cpu-1": {
            "engine_device": "cpu",
            "engine_model": {"name": "tiny"},
            "engine_bind_address": "10.1.0.2",
            "engine_base_port": 8100,
        },
    }
    result = engine_backends(["gpu-1", "cpu-1"], hostvars)
    # The model each serves, and what makes instances of one served name the same model.
    # HTTPS by default (engine_tls).
    default = {
        "model": "llama-3.1-8b-instruct",
        "model_settings": LLAMA_8B_SETTINGS,
        "tls": True,
    }
    tiny = {
        "model": "tiny",
        "model_settings": {"engine_model": {"name": "tiny"}, "max_model_len": None},
        "tls": True,
    }
    assert result == [
        {"name": "gpu-1-0", "host": "gpu-1", "address": "10.1.0.1", "port": 8000, **default},
        {"name": "gpu-1-1", "host": "gpu-1", "address": "10.1.0.1", "port": 8001, **default},
        {"name": "gpu-1-2", "host": "gpu-1", "address": "10.1.0.1", "port": 8002, **default},
        {"name": "gpu-1-3", "host": "gpu-1", "address": "10.1.0.1", "port": 8003, **default},
        {"name": "cpu-1-0", "host": "cpu-1", "address": "10.1.0.2", "port": 8100, **tiny},
    ]
    detailed = engine_backends(["cpu-1"], hostvars, details=True)
    assert detailed[0]["unit"] == "onprem-llm-engine@0.service"
    assert detailed[0]["host"] == "cpu-1"


def test_backends_fail_naming_the_host() -> None:
    with pytest.raises(AnsibleFilterError, match=r"engine_backends: bad-1: engine_device"):
        engine_backends(["bad-1"], {"bad-1": {"engine_device": "fpga"}})
    with pytest.raises(AnsibleFilterError, match="expected a list of hosts"):
        engine_backends("gpu-1", {})


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


INVENTORY = {
    "all": {
        "children": {
            "engine_nodes": {
                "hosts": {
                    "h200-a": {"ansible_host": "10.20.1.11", "nvidia_driver_profile": "h200_hgx"},
                    "cpu-b": {
                        "ansible_host": "10.20.1.12",
                        "engine_device": "cpu",
                        "engine_model": {"name": "tiny"},
                    },
                }
            },
            "gateways": {"hosts": {"gw-1": {"ansible_connection": "local"}}},
        }
    }
}
PLAYBOOK = """
- name: Gateways only, as with --limit gateways
  hosts: gateways
  gather_facts: false
  tasks:
    - name: Show the backends
      ansible.builtin.debug:
        msg: "{{ groups['engine_nodes'] | onprem.llm.engine_backends(hostvars) | to_json }}"
"""


def test_backends_in_a_run_without_the_engine_hosts(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
        env=_ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [msg] = [line for line in result.stdout.splitlines() if line.startswith('    "msg": ')]
    entries = {e["name"]: e for e in json.loads(json.loads("{" + msg + "}")["msg"])}
    assert sorted(entries) == ["cpu-b-0"] + [f"h200-a-{i}" for i in range(8)]
    assert entries["h200-a-7"] == {
        "name": "h200-a-7",
        "host": "h200-a",
        "address": "10.20.1.11",
        "port": 8007,
        "model": "llama-3.1-8b-instruct",
        "model_settings": LLAMA_8B_SETTINGS,
        "tls": True,
    }
    assert entries["cpu-b-0"] == {
        "name": "cpu-b-0",
        "host": "cpu-b",
        "address": "10.20.1.12",
        "port": 8000,
        "model": "tiny",
        "model_settings": {"engine_model": {"name": "tiny"}, "max_model_len": None},
        "tls": True,
    }


@pytest.mark.parametrize("name", ["engine_backends", "engine_instances"])
def test_documentation_loads_with_ansible_doc(name: str) -> None:
    result = subprocess.run(
        ["ansible-doc", "-t", "filter", "--json", f"onprem.llm.{name}"],
        env=_ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[f"onprem.llm.{name}"]["doc"]["name"] == name


def test_implicit_ansible_host_gives_way_to_facts() -> None:
    # Inside a play ansible_host defaults to the inventory name; the gateway, reading hostvars,
    # does not see it: both must pick the facts' address.
    facts = {"default_ipv4": {"address": "10.88.0.7"}}
    result = engine_instances(
        "cpu-2", settings(engine_device="cpu", ansible_host="cpu-2", ansible_facts=facts)
    )
    assert result[0]["address"] == "10.88.0.7"
