"""An engine instance's command line and environment, from the instance and the role's settings.

The engine role writes both per instance: the environment into an EnvironmentFile (mode 0600,
it may carry the API key), the command into a unit drop-in's ExecStart. Natively the command is
the venv's python running the engine's module; in a container it is `podman|docker run` of the
image with the engine's arguments after it, the environment passed by name (--env NAME) so that
values never appear on the command line.

Pure: the instance comes from _engine_instances, the settings from the role's variables
(roles/engine/vars/main.yml, _engine_command_settings), so every engine type and mode is tested
without a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The settings the command depends on; a missing one is a programming error, named.
SETTINGS = (
    "type_spec",
    "mode",
    "dropped_flags",
    "model_store_path",
    "shutdown_grace_seconds",
    "tls_dir",
    "tls_ciphers",
    "openssl_config",
    "api_key",
    "hub_offline",
    "cpu_kvcache_space_gb",
    "extra_args",
    "extra_env",
    "native_venv",
    "container_runtime",
    "container_image",
    "container_network",
    "container_model_dir",
    "container_shm_size",
    "container_gpu_method",
    "container_extra_args",
)
# Settings read only by instances across hosts (absent: not known yet, e.g. in check mode).
OPTIONAL_SETTINGS = ("native_distribution",)
CONTAINER_NAME_PREFIX = "onprem-llm-engine-"


class EngineCommandError(ValueError):
    """Settings the command cannot be built from."""


class _Flags:
    """The engine's flag for each setting, as far as the installed engine has it."""

    def __init__(self, spec: Mapping[str, Any], dropped: Any) -> None:
        every = {**spec["flags"], **(spec.get("span_flags") or {})}
        self._flags = {
            str(setting): str(flag)
            for setting, flag in every.items()
            if flag not in (dropped or ())
        }

    def __contains__(self, setting: str) -> bool:
        return setting in self._flags

    def __getitem__(self, setting: str) -> str:
        try:
            return self._flags[setting]
        except KeyError:
            raise EngineCommandError(
                f"the engine has no flag for {setting}, which this instance needs"
            ) from None


def engine_arguments(instance: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The engine's own arguments (after the module or the image): model, address, sizes, TLS."""
    spec = settings["type_spec"]
    flags = _Flags(spec, settings["dropped_flags"])
    container = settings["mode"] == "container"
    store = settings["container_model_dir"] if container else settings["model_store_path"]
    model_path = f"{store}/{instance['model_dir_name']}"
    args = [str(word) for word in spec["container_command"]] if container else []
    if spec["model_positional"]:
        args.append(model_path)
    elif "model" in flags:
        args += [flags["model"], model_path]
    if "served_model_name" in flags:
        args += [flags["served_model_name"], str(instance["model"])]
    engine_model = (instance.get("model_settings") or {}).get("engine_model") or {}
    if engine_model.get("task") == "embed":
        args += [flags["runner"], "pooling"]
    bridge = container and settings["container_network"] == "bridge"
    args += [flags["host"], "0.0.0.0" if bridge else str(instance["address"])]
    args += [flags["port"], str(instance["port"])]
    gpu = instance["device"] == "gpu"
    span = instance.get("span")
    if (gpu or span) and "tensor_parallel_size" in flags:
        args += [flags["tensor_parallel_size"], str(instance["tensor_parallel_size"])]
    if span:
        args += _span_arguments(instance, span, flags)
    if instance.get("max_model_len") and "max_model_len" in flags:
        args += [flags["max_model_len"], str(instance["max_model_len"])]
    if gpu and "gpu_memory_utilization" in flags:
        args += [flags["gpu_memory_utilization"], str(instance["gpu_memory_utilization"])]
    if "shutdown_grace" in flags:
        args += [flags["shutdown_grace"], str(settings["shutdown_grace_seconds"])]
    if instance.get("tls"):
        tls_dir = settings["tls_dir"]
        args += [flags["tls_keyfile"], f"{tls_dir}/server.key"]
        args += [flags["tls_certfile"], f"{tls_dir}/server.crt", flags["tls_refresh"]]
        if "tls_ciphers" in flags:
            args += [flags["tls_ciphers"], str(settings["tls_ciphers"])]
    return [*args, *(str(arg) for arg in settings["extra_args"])]


def _span_arguments(
    instance: Mapping[str, Any], span: Mapping[str, Any], flags: _Flags
) -> list[str]:
    """vLLM's multi-node launcher (multiprocessing backend, no Ray): every host starts its own
    ranks and meets the head at its master address; workers run no API server."""
    args = []
    if int(instance.get("pipeline_parallel_size") or 1) > 1:
        args += [flags["pipeline_parallel_size"], str(instance["pipeline_parallel_size"])]
    args += [flags["distributed_executor_backend"], "mp"]
    args += [flags["nnodes"], str(span["nnodes"]), flags["node_rank"], str(span["rank"])]
    args += [flags["master_addr"], str(span["head_address"])]
    args += [flags["master_port"], str(span["master_port"])]
    if span["rank"]:
        args.append(flags["headless"])
    return args


def environment(instance: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, str]:
    """The instance's environment, in the order it is written (extra_env last: it wins)."""
    spec = settings["type_spec"]
    env: dict[str, str] = {}
    if settings["hub_offline"]:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if instance["device"] == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings["cpu_kvcache_space_gb"])
    elif settings["mode"] != "container":
        # In a container the runtime exposes only the instance's GPUs, numbered from 0.
        env["CUDA_VISIBLE_DEVICES"] = str(instance["cuda_visible_devices"])
    if instance.get("tls"):
        env["OPENSSL_CONF"] = str(settings["openssl_config"])
    span = instance.get("span")
    if span:
        # Across hosts: the ranks reach each other at this address, over the fabric's interface.
        env["VLLM_HOST_IP"] = str(instance["address"])
        if span.get("interface"):
            env["GLOO_SOCKET_IFNAME"] = env["NCCL_SOCKET_IFNAME"] = str(span["interface"])
    else:
        # One host per instance: the engine's own distributed traffic stays on loopback.
        env.update({str(name): str(value) for name, value in spec.get("loopback_env", {}).items()})
    if settings["api_key"] and spec["api_key_env"]:
        env[str(spec["api_key_env"])] = str(settings["api_key"])
    env.update({str(name): str(value) for name, value in settings["extra_env"].items()})
    return env


def _container_run(
    instance: Mapping[str, Any], settings: Mapping[str, Any], env: Mapping[str, str]
) -> list[str]:
    """The runtime's own options: network, shared memory, volumes, GPUs, environment names."""
    address, port = instance["address"], instance["port"]
    if settings["container_network"] == "bridge":
        run = ["--publish", f"{address}:{port}:{port}"]
    else:
        run = ["--network", "host"]
    shm = settings["container_shm_size"]
    run += ["--shm-size", str(shm)] if shm else ["--ipc", "host"]
    store, model_dir = settings["model_store_path"], settings["container_model_dir"]
    run += ["--volume", f"{store}:{model_dir}:ro"]
    if instance.get("tls"):
        run += ["--volume", f"{settings['tls_dir']}:{settings['tls_dir']}:ro"]
    gpus, method = instance.get("gpus") or [], settings["container_gpu_method"]
    if gpus and method == "cdi":
        for gpu in gpus:
            run += ["--device", f"nvidia.com/gpu={gpu}"]
    elif gpus and method == "gpus":
        run += ["--gpus", f'"device={instance["cuda_visible_devices"]}"']
    elif gpus:
        run += ["--env", f"NVIDIA_VISIBLE_DEVICES={instance['cuda_visible_devices']}"]
    for name in env:
        run += ["--env", name]
    extra = [*settings["type_spec"]["container_args"], *settings["container_extra_args"]]
    return [*run, *(str(arg) for arg in extra)]


# vllm-cpu's `vllm` command fails before it parses anything (its parser asks importlib for the
# version of a distribution named vllm), so its workers call the same serve command directly.
_CPU_BUILD_SERVE = (
    "import sys; "
    "from vllm.entrypoints.cli.serve import ServeSubcommand; "
    "from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "args = make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:]); "
    "validate_parsed_serve_args(args); ServeSubcommand.cmd(args)"
)


def _native_worker(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """How a native worker starts: vLLM's serve command (only it has --headless)."""
    if settings.get("native_distribution") == "vllm-cpu":
        return ["-c", _CPU_BUILD_SERVE]
    return ["-m", str(spec["native_worker_module"]), *map(str, spec["native_worker_args"])]


def command(instance: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The whole command of the instance's unit: the engine, or its container, with arguments."""
    missing = [name for name in SETTINGS if name not in settings]
    if missing:
        raise EngineCommandError(f"settings lack {', '.join(missing)}")
    args = engine_arguments(instance, settings)
    if settings["mode"] != "container":
        venv, spec = settings["native_venv"], settings["type_spec"]
        if (instance.get("span") or {}).get("rank"):
            return [f"{venv}/bin/python", *_native_worker(spec, settings), *args]
        return [f"{venv}/bin/python", "-m", str(spec["native_module"]), *args]
    runtime = settings["container_runtime"]
    return [
        f"/usr/bin/{runtime}",
        "run",
        "--rm",
        "--pull",
        "never",
        "--name",
        f"{CONTAINER_NAME_PREFIX}{instance['index']}",
        *_container_run(instance, settings, environment(instance, settings)),
        str(settings["container_image"]),
        *args,
    ]
