"""Engine instances of a host from its inventory variables, with the placement of _placement.

One function, used by the engine role on the host itself and by the gateway, which must know
every host's instances without the engine hosts being in the run (`--limit gateways`). Both
see the same variables, so both compute the same instances.

A host's settings are the engine role's variables (engine_*) and what describes its GPUs: the
onprem_gpu fact of gpu_facts when known, else engine_host_gpus, else the GPUs of its hardware
profile (nvidia_driver_profile). Errors name the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils import _placement

ENGINE_TYPES = ("vllm", "trtllm", "tgi")
ENGINE_DEVICES = ("gpu", "cpu")
ENGINE_MODES = ("native", "container")
UNIT_TEMPLATE = "onprem-llm-engine@{}.service"

# The role variables that decide a host's instances; their role defaults must be plain values.
SETTINGS = (
    "engine_type",
    "engine_mode",
    "engine_device",
    "engine_model",
    "engine_served_model_name",
    "engine_max_model_len",
    "engine_cpu_instances",
    "engine_instances_per_host",
    "engine_tensor_parallel_size",
    "engine_gpu_memory_utilization",
    "engine_base_port",
    "engine_ports",
    "engine_reserved_ports",
    "engine_bind_address",
    "engine_host_gpus",
    "engine_gateway_weight",
)
# Host variables read besides the role's own.
HOST_INPUTS = ("onprem_gpu", "nvidia_driver_profile", "ansible_host")

# GPUs of each hardware profile (NVIDIA's quoted memory per GPU, GB) for hosts whose GPU facts
# are not known yet. NVLink domains: the HGX board, or the whole NVL72 rack.
PROFILE_GPUS: dict[str, dict[str, Any]] = {
    "h100_hgx": {"gpu_count": 8, "gpu_memory_gb": 80, "nvlink_domain_size": 8},
    "h200_hgx": {"gpu_count": 8, "gpu_memory_gb": 141, "nvlink_domain_size": 8},
    "b200_hgx": {"gpu_count": 8, "gpu_memory_gb": 180, "nvlink_domain_size": 8},
    "gb200_nvl72": {"gpu_count": 4, "gpu_memory_gb": 186, "nvlink_domain_size": 72},
}

# Placement's field names, as the role's variables.
_FIELD_VARIABLES = {
    "tensor_parallel_size": "engine_tensor_parallel_size",
    "instances": "engine_instances_per_host",
    "base_port": "engine_base_port",
    "ports": "engine_ports",
    "reserved_ports": "engine_reserved_ports",
    "gpu_memory_utilization": "engine_gpu_memory_utilization",
    "model": "engine_model",
    "host": "engine_host_gpus",
}


class EngineInputError(ValueError):
    """Input that cannot give instances; the message names the host and the variable."""


def _variable(field_name: str, gpu_source: str) -> str:
    head, dot, rest = field_name.partition(".")
    head, bracket, index = head.partition("[")
    if head == "host":
        return gpu_source + dot + rest
    name = _FIELD_VARIABLES.get(head, head)
    return name + bracket + index + dot + rest


def _gpu_host(settings: Mapping[str, Any]) -> tuple[Any, str]:
    """The host's GPUs and the variable they came from."""
    facts = settings.get("onprem_gpu")
    if isinstance(facts, Mapping) and facts.get("gpu_count"):
        return facts, "onprem_gpu"
    if settings.get("engine_host_gpus"):
        return settings["engine_host_gpus"], "engine_host_gpus"
    profile = settings.get("nvidia_driver_profile")
    if profile in PROFILE_GPUS:
        return PROFILE_GPUS[profile], "nvidia_driver_profile"
    raise EngineInputError(
        "engine_host_gpus: the host's GPUs are unknown: give engine_host_gpus"
        " ({gpu_count, gpu_memory_gb, nvlink_domain_size}), a known nvidia_driver_profile"
        f" ({', '.join(PROFILE_GPUS)}), run gpu_facts first, or set engine_device: cpu"
    )


def _choice(settings: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = settings.get(name)
    if value not in choices:
        raise EngineInputError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def host_address(settings: Mapping[str, Any], host: str) -> str:
    """Where the host's engines listen: engine_bind_address, else the inventory's
    ansible_host, else the default IPv4 address from facts, else the inventory name."""
    if settings.get("engine_bind_address"):
        return str(settings["engine_bind_address"])
    # Inside a play ansible_host defaults to the inventory name: that says nothing.
    if settings.get("ansible_host") and str(settings["ansible_host"]) != host:
        return str(settings["ansible_host"])
    facts = settings.get("ansible_facts") or {}
    address = (facts.get("default_ipv4") or {}).get("address")
    return str(address or host)


def host_instances(host: str, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The engine instances of one host, in order; raises EngineInputError on bad input."""
    engine = _choice(settings, "engine_type", ENGINE_TYPES)
    device = _choice(settings, "engine_device", ENGINE_DEVICES)
    model = settings.get("engine_model")
    if not isinstance(model, Mapping) or not model.get("name"):
        raise EngineInputError("engine_model: expected a mapping with at least a name")
    served = str(settings.get("engine_served_model_name") or model["name"])
    reserved = settings.get("engine_reserved_ports") or []
    ports = settings.get("engine_ports") or None
    gpu_source = "engine_host_gpus"
    try:
        if device == "cpu":
            count = _placement.positive_int(
                settings.get("engine_cpu_instances"), "engine_cpu_instances"
            )
            options = _placement.options_from_kwargs(
                base_port=settings.get("engine_base_port", _placement.DEFAULT_BASE_PORT),
                ports=ports,
                reserved_ports=reserved,
            )
            placed = [
                _placement.Instance(index=i, gpus=(), port=port)
                for i, port in enumerate(_placement._ports(count, options))
            ]
            tp = None
            context = model.get("context_length")
        else:
            gpu_host, gpu_source = _gpu_host(settings)
            kwargs: dict[str, Any] = {
                "base_port": settings.get("engine_base_port", _placement.DEFAULT_BASE_PORT),
                "ports": ports,
                "reserved_ports": reserved,
                "gpu_memory_utilization": settings.get(
                    "engine_gpu_memory_utilization", _placement.DEFAULT_GPU_MEMORY_UTILIZATION
                ),
            }
            for option, name in (
                ("tensor_parallel_size", "engine_tensor_parallel_size"),
                ("instances", "engine_instances_per_host"),
            ):
                if settings.get(name):
                    kwargs[option] = settings[name]
            plan = _placement.place(
                _placement.model_from_dict(model),
                _placement.host_from_dict(gpu_host),
                _placement.options_from_kwargs(**kwargs),
            )
            if not plan.fits:
                raise EngineInputError(f"engine_model: {plan.reason} ({gpu_source})")
            placed = list(plan.instances)
            tp = plan.tensor_parallel_size
            context = plan.max_model_len
    except _placement.PlacementInputError as error:
        field = _variable(error.field, gpu_source)
        message = str(error).split(": ", 1)[1]
        raise EngineInputError(f"{field}: {message}") from None

    max_len = settings.get("engine_max_model_len") or context
    address = host_address(settings, host)
    weight = settings.get("engine_gateway_weight")
    instances = []
    for instance in placed:
        entry = {
            "name": f"{host}-{instance.index}",
            "host": host,
            "index": instance.index,
            "engine": engine,
            "device": device,
            "model": served,
            "address": address,
            "port": instance.port,
            "gpus": list(instance.gpus),
            "cuda_visible_devices": ",".join(str(gpu) for gpu in instance.gpus),
            "tensor_parallel_size": tp,
            "max_model_len": int(max_len) if max_len else None,
            "unit": UNIT_TEMPLATE.format(instance.index),
        }
        if weight:
            entry["weight"] = int(weight)
        instances.append(entry)
    return instances


def host_settings(defaults: Mapping[str, Any], host_vars: Mapping[str, Any]) -> dict[str, Any]:
    """A host's settings: its inventory variables over the role's defaults."""
    settings: dict[str, Any] = {}
    for name in SETTINGS:
        if name in host_vars:
            settings[name] = host_vars[name]
        elif name in defaults:
            value = defaults[name]
            if isinstance(value, str) and "{{" in value:
                raise EngineInputError(f"{name}: its role default must be a plain value")
            settings[name] = value
    for name in (*HOST_INPUTS, "ansible_facts"):
        if name in host_vars:
            settings[name] = host_vars[name]
    return settings


def backends(
    hosts: list[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any],
    details: bool = False,
) -> list[dict[str, Any]]:
    """Every instance of every host, as haproxy_engines entries ({name, address, port,
    weight?}), or with every field when details is true."""
    result = []
    for host in hosts:
        try:
            instances = host_instances(host, host_settings(defaults, hostvars[host]))
        except EngineInputError as error:
            raise EngineInputError(f"{host}: {error}") from None
        for instance in instances:
            if details:
                result.append(instance)
            else:
                keys = ("name", "address", "port", "weight")
                result.append({key: instance[key] for key in keys if key in instance})
    return result
