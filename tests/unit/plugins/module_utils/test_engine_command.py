"""An engine instance's command and environment for each engine type and mode, with the engine
types' flag tables of the role itself (roles/engine/vars/main.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.module_utils._engine_command import (
    SETTINGS,
    EngineCommandError,
    command,
    engine_arguments,
    environment,
)

ROLE = Path(__file__).resolve().parents[4] / "roles" / "engine"
ENGINE_TYPES = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_engine_types"]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TLS_DIR = "/etc/onprem-llm/engine-tls"

GPU_INSTANCE = {
    "index": 1,
    "name": "llama-4-maverick-1",
    "model": "llama-4-maverick",
    "model_dir_name": "llama-4-maverick-fp8",
    "device": "gpu",
    "gpus": [4, 5, 6, 7],
    "cuda_visible_devices": "4,5,6,7",
    "address": "10.20.1.11",
    "port": 8001,
    "tensor_parallel_size": 4,
    "max_model_len": 65536,
    "gpu_memory_utilization": 0.9,
    "tls": False,
}
CPU_INSTANCE = {
    **GPU_INSTANCE,
    "index": 0,
    "name": "tiny-0",
    "model": "tiny",
    "model_dir_name": "tiny",
    "device": "cpu",
    "gpus": [],
    "cuda_visible_devices": "",
    "port": 8000,
    "max_model_len": 0,
}


def settings(engine_type: str = "vllm", **changes: object) -> dict:
    base = {
        "type_spec": ENGINE_TYPES[engine_type],
        "mode": "native",
        "dropped_flags": [],
        "model_store_path": "/srv/models",
        "shutdown_grace_seconds": DEFAULTS["engine_shutdown_grace_seconds"],
        "tls_dir": TLS_DIR,
        "tls_ciphers": "ECDHE+AESGCM",
        "openssl_config": f"{TLS_DIR}/openssl.cnf",
        "api_key": "",
        "hub_offline": True,
        "cpu_kvcache_space_gb": 4,
        "extra_args": [],
        "extra_env": {},
        "native_venv": DEFAULTS["engine_native_venv"],
        "container_runtime": "podman",
        "container_image": "registry.example.internal/vllm/vllm-openai:v0.11.0",
        "container_network": "bridge",
        "container_model_dir": "/models",
        "container_shm_size": "",
        "container_gpu_method": "cdi",
        "container_extra_args": [],
    }
    assert set(base) == set(SETTINGS)
    return {**base, **changes}


def test_native_vllm_on_gpus_runs_the_module_with_every_setting():
    assert command(GPU_INSTANCE, settings()) == [
        "/opt/onprem-llm/engine/venv/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/srv/models/llama-4-maverick-fp8",
        "--served-model-name",
        "llama-4-maverick",
        "--host",
        "10.20.1.11",
        "--port",
        "8001",
        "--tensor-parallel-size",
        "4",
        "--max-model-len",
        "65536",
        "--gpu-memory-utilization",
        "0.9",
        "--shutdown-timeout",
        "30",
    ]
    assert environment(GPU_INSTANCE, settings()) == {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "4,5,6,7",
        **LOOPBACK,
    }


# vLLM's process groups and NCCL's bootstrap of an instance stay on the host's loopback.
LOOPBACK = {"VLLM_HOST_IP": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}


def test_a_cpu_instance_has_no_gpu_settings_and_its_kv_cache_size():
    args = engine_arguments(CPU_INSTANCE, settings(hub_offline=False))
    assert "--tensor-parallel-size" not in args
    assert "--gpu-memory-utilization" not in args
    assert "--max-model-len" not in args  # 0: the model's own length
    assert environment(CPU_INSTANCE, settings(hub_offline=False)) == {
        "VLLM_CPU_KVCACHE_SPACE": "4",
        **LOOPBACK,
    }


def test_tls_adds_the_key_certificate_refresh_ciphers_and_openssl_configuration():
    tls = {**GPU_INSTANCE, "tls": True}
    args = engine_arguments(tls, settings())
    assert args[-7:] == [
        "--ssl-keyfile",
        f"{TLS_DIR}/server.key",
        "--ssl-certfile",
        f"{TLS_DIR}/server.crt",
        "--enable-ssl-refresh",
        "--ssl-ciphers",
        "ECDHE+AESGCM",
    ]
    assert environment(tls, settings())["OPENSSL_CONF"] == f"{TLS_DIR}/openssl.cnf"


def test_optional_flags_the_installed_engine_lacks_are_left_out():
    tls = {**GPU_INSTANCE, "tls": True}
    args = engine_arguments(tls, settings(dropped_flags=["--shutdown-timeout", "--ssl-ciphers"]))
    assert "--shutdown-timeout" not in args
    assert "--ssl-ciphers" not in args
    assert "--enable-ssl-refresh" in args


def test_the_api_key_is_in_the_environment_only_and_extra_env_wins():
    s = settings(api_key="sk-secret", extra_env={"HF_HUB_OFFLINE": "0", "VLLM_LOGGING_LEVEL": 10})
    assert "sk-secret" not in command(GPU_INSTANCE, s)
    assert environment(GPU_INSTANCE, s) == {
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "4,5,6,7",
        **LOOPBACK,
        "VLLM_API_KEY": "sk-secret",
        "VLLM_LOGGING_LEVEL": "10",
    }


def test_extra_args_come_last_verbatim():
    s = settings(extra_args=["--override-generation-config", '{"temperature": 0.2}', 7])
    assert command(GPU_INSTANCE, s)[-3:] == [
        "--override-generation-config",
        '{"temperature": 0.2}',
        "7",
    ]


def test_a_vllm_container_gets_cdi_devices_a_published_port_and_env_by_name():
    s = settings(mode="container", api_key="sk-secret")
    argv = command(GPU_INSTANCE, s)
    image = argv.index(s["container_image"])
    assert argv[:image] == [
        "/usr/bin/podman",
        "run",
        "--rm",
        "--pull",
        "never",
        "--name",
        "onprem-llm-engine-1",
        "--publish",
        "10.20.1.11:8001:8001",
        "--ipc",
        "host",
        "--volume",
        "/srv/models:/models:ro",
        "--device",
        "nvidia.com/gpu=4",
        "--device",
        "nvidia.com/gpu=5",
        "--device",
        "nvidia.com/gpu=6",
        "--device",
        "nvidia.com/gpu=7",
        "--env",
        "HF_HUB_OFFLINE",
        "--env",
        "TRANSFORMERS_OFFLINE",
        "--env",
        "VLLM_HOST_IP",
        "--env",
        "GLOO_SOCKET_IFNAME",
        "--env",
        "NCCL_SOCKET_IFNAME",
        "--env",
        "VLLM_API_KEY",
    ]
    # Inside the container: the model under /models, listening on every address of its netns.
    assert argv[image + 1 : image + 7] == [
        "--model",
        "/models/llama-4-maverick-fp8",
        "--served-model-name",
        "llama-4-maverick",
        "--host",
        "0.0.0.0",
    ]
    assert "sk-secret" not in argv
    assert "CUDA_VISIBLE_DEVICES" not in environment(GPU_INSTANCE, s)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("gpus", ["--gpus", '"device=4,5,6,7"']),
        ("env", ["--env", "NVIDIA_VISIBLE_DEVICES=4,5,6,7"]),
    ],
)
def test_other_gpu_methods(method, expected):
    argv = command(GPU_INSTANCE, settings(mode="container", container_gpu_method=method))
    start = argv.index(expected[0])
    assert argv[start : start + 2] == expected


def test_host_network_shared_memory_tls_volume_and_extra_container_args():
    s = settings(
        mode="container",
        container_network="host",
        container_shm_size="16g",
        container_extra_args=["--label", "team=ml"],
    )
    argv = command({**GPU_INSTANCE, "tls": True}, s)
    assert argv[7:13] == [
        "--network",
        "host",
        "--shm-size",
        "16g",
        "--volume",
        "/srv/models:/models:ro",
    ]
    assert argv[13:15] == ["--volume", f"{TLS_DIR}:{TLS_DIR}:ro"]
    assert argv[argv.index(s["container_image"]) - 2 :][:2] == ["--label", "team=ml"]
    assert argv[argv.index("--host") + 1] == "10.20.1.11"


def test_trtllm_takes_the_model_as_its_first_argument_with_its_own_flags_and_ulimits():
    argv = command(GPU_INSTANCE, settings("trtllm", mode="container"))
    image = argv.index(settings()["container_image"])
    assert argv[image - 4 : image] == ["--ulimit", "memlock=-1", "--ulimit", "stack=67108864"]
    assert argv[image + 1 :] == [
        "trtllm-serve",
        "serve",
        "/models/llama-4-maverick-fp8",
        "--host",
        "0.0.0.0",
        "--port",
        "8001",
        "--tp_size",
        "4",
        "--max_seq_len",
        "65536",
        "--kv_cache_free_gpu_memory_fraction",
        "0.9",
    ]


def test_tgi_has_no_served_name_flag_and_its_own_names_for_the_rest():
    args = engine_arguments(GPU_INSTANCE, settings("tgi", mode="container"))
    assert args == [
        "--model-id",
        "/models/llama-4-maverick-fp8",
        "--hostname",
        "0.0.0.0",
        "--port",
        "8001",
        "--num-shard",
        "4",
        "--max-total-tokens",
        "65536",
        "--cuda-memory-fraction",
        "0.9",
        "--graceful-termination-timeout",
        "30",
    ]


def test_tls_on_an_engine_without_tls_flags_names_the_setting():
    with pytest.raises(EngineCommandError, match="no flag for tls_keyfile"):
        engine_arguments({**GPU_INSTANCE, "tls": True}, settings("tgi", mode="container"))


def test_missing_settings_are_named():
    incomplete = settings()
    del incomplete["container_image"]
    with pytest.raises(EngineCommandError, match="settings lack container_image"):
        command(GPU_INSTANCE, incomplete)
