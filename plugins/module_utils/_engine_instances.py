"""Engine instances of a host from its inventory variables, with the placement of _placement.

One function, used by the engine role on the host itself and by the gateway, the firewall and
Prometheus, which must know every host's instances without the engine hosts being in the run
(`--limit gateways`). All of them see the same inventory variables, so all compute the same
instances.

A host's GPUs come from the inventory only: engine_host_gpus when set, else the hardware table
(_hardware) for its nvidia_driver_profile, whose memory is the figure NVIDIA quotes (141 GB on
an H200, not the 143771 MiB = 150.8 GB nvidia-smi reports). The onprem_gpu fact of gpu_facts,
known only when the GPU host is in the run, never changes the answer: it is used to check that
the host is what the inventory says (profile, GPU count, memory), and a host that is not fails
with the reason instead of serving a placement the gateways do not know. Errors name the
variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils import _hardware, _placement, _routing

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
    "engine_models",
    "engine_model_dir_name",
    "engine_model_source",
    "engine_tls",
    "engine_span_hosts",
    "engine_span_master_port",
    "engine_span_interface",
)
# Host variables read besides the role's own (the rack's IMEX domain: one NVLink domain).
HOST_INPUTS = (
    "onprem_gpu",
    "nvidia_driver_profile",
    "ansible_host",
    "nvidia_driver_imex_rack_group",
)

# GPUs of each hardware profile (NVIDIA's quoted memory per GPU, GB), from the hardware table.
# NVLink domains: the HGX board, or the whole NVL72 rack.
PROFILE_GPUS: dict[str, dict[str, Any]] = {
    key: gpus for key in _hardware.PROFILES if (gpus := _hardware.profile_gpus(key)) is not None
}
# nvidia-smi reports a little more than the quoted figure (143771 MiB = 150.8 GB on a 141 GB
# H200); a GPU reporting less than this share of the declared memory is not the declared part.
_MEMORY_TOLERANCE = 0.97

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


# The settings of another inventory host (the hosts of one instance across hosts), as
# host_settings makes them; raises KeyError for a host the inventory does not have.
PeerSettings = Callable[[str], Mapping[str, Any]]


def _variable(field_name: str, gpu_source: str) -> str:
    head, dot, rest = field_name.partition(".")
    head, bracket, index = head.partition("[")
    if head == "host":
        return gpu_source + dot + rest
    name = _FIELD_VARIABLES.get(head, head)
    return name + bracket + index + dot + rest


def _gpu_host(settings: Mapping[str, Any]) -> tuple[Any, str]:
    """The host's GPUs and the variable they came from: inventory variables only."""
    if settings.get("engine_host_gpus"):
        return settings["engine_host_gpus"], "engine_host_gpus"
    profile = settings.get("nvidia_driver_profile")
    if profile in PROFILE_GPUS:
        return PROFILE_GPUS[profile], "nvidia_driver_profile"
    raise EngineInputError(
        "engine_host_gpus: the host's GPUs are unknown: give engine_host_gpus"
        " ({gpu_count, gpu_memory_gb, nvlink_domain_size}), a known nvidia_driver_profile"
        f" ({', '.join(PROFILE_GPUS)}), or set engine_device: cpu"
    )


def check_gpu_facts(settings: Mapping[str, Any], gpu_host: Any, source: str) -> None:
    """Fail when the host's onprem_gpu fact contradicts the GPUs the inventory declares.

    Placement never reads the fact (the gateways do not have it); a host that differs from its
    inventory would run instances the gateways do not route to, so it stops here instead."""
    facts = settings.get("onprem_gpu")
    if not isinstance(facts, Mapping) or not facts.get("gpu_count"):
        return
    if not isinstance(gpu_host, Mapping):
        return  # engine_host_gpus of the wrong shape: placement names the field
    profile = settings.get("nvidia_driver_profile")
    seen = facts.get("hardware_profile")
    if source == "nvidia_driver_profile" and seen and seen != profile:
        raise EngineInputError(
            f"nvidia_driver_profile: the inventory says {profile} but the host's GPUs read as "
            f"{seen} (onprem_gpu): correct the inventory, or override the profile in gpu_facts"
        )
    readable = [
        gpu
        for gpu in facts.get("gpus") or []
        if isinstance(gpu, Mapping) and gpu.get("readable", True)
    ]
    try:
        declared = int(gpu_host.get("gpu_count") or 0)
    except (TypeError, ValueError):
        return
    if len(readable) < declared:
        lost = facts.get("unreadable_gpus") or []
        detail = f" (GPU {', '.join(map(str, lost))} cannot be read)" if lost else ""
        raise EngineInputError(
            f"{source}: {declared} GPUs declared, the host has {len(readable)} readable"
            f"{detail} (onprem_gpu): fix the GPUs, or declare fewer in engine_host_gpus"
        )
    memory_gb = gpu_host.get("gpu_memory_gb")
    if memory_gb is None and gpu_host.get("gpu_memory_mib") is not None:
        memory_gb = float(gpu_host["gpu_memory_mib"]) * 1024 * 1024 / 1e9
    mib = [gpu.get("memory_total_mib") for gpu in readable[:declared]]
    sizes = [value for value in mib if isinstance(value, (int, float))]
    if memory_gb and sizes and len(sizes) == len(mib):
        smallest_gb = min(sizes) * 1024 * 1024 / 1e9
        if smallest_gb < float(memory_gb) * _MEMORY_TOLERANCE:
            raise EngineInputError(
                f"{source}: {float(memory_gb):g} GB per GPU declared, the host's smallest GPU "
                f"has {min(sizes)} MiB = {smallest_gb:.1f} GB (onprem_gpu)"
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


# Keys of an engine_models entry: one model on its own GPUs (or CPU instances) of the host.
MODEL_ENTRY_KEYS = frozenset(
    {
        "model",
        "served_model_name",
        "dir_name",
        "source",
        "gpus",
        "cpu_instances",
        "tensor_parallel_size",
        "instances",
        "max_model_len",
        "gpu_memory_utilization",
    }
)


MODEL_TASKS = ("generate", "embed")


def _check_task(model: Mapping[str, Any], variable: str, settings: Mapping[str, Any]) -> None:
    """task: generate (default) or embed, an embedding model served by vLLM's pooling runner
    on /v1/embeddings (the semantic cache's, or tenants' own retrieval)."""
    task = model.get("task", "generate")
    if task not in MODEL_TASKS:
        raise EngineInputError(
            f"{variable}.task: expected {' or '.join(MODEL_TASKS)}, got {task!r}"
        )
    if task == "embed" and settings.get("engine_type") != "vllm":
        raise EngineInputError(
            f"{variable}.task: embed is served by vLLM's pooling runner; engine_type is "
            f"{settings.get('engine_type')!r}"
        )


def _entries(settings: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The host's models as (variable prefix, entry): engine_models, else the single model of
    engine_model and its engine_* settings (prefix "")."""
    models = settings.get("engine_models")
    if not models:
        return [
            (
                "",
                {
                    "model": settings.get("engine_model"),
                    "served_model_name": settings.get("engine_served_model_name"),
                    "dir_name": settings.get("engine_model_dir_name"),
                    "source": settings.get("engine_model_source"),
                    "cpu_instances": settings.get("engine_cpu_instances"),
                    "tensor_parallel_size": settings.get("engine_tensor_parallel_size"),
                    "instances": settings.get("engine_instances_per_host"),
                    "max_model_len": settings.get("engine_max_model_len"),
                    "gpu_memory_utilization": settings.get(
                        "engine_gpu_memory_utilization", _placement.DEFAULT_GPU_MEMORY_UTILIZATION
                    ),
                },
            )
        ]
    if not isinstance(models, list) or not all(isinstance(m, Mapping) for m in models):
        raise EngineInputError("engine_models: expected a list of {model, gpus, ...} mappings")
    if settings.get("engine_ports"):
        raise EngineInputError(
            "engine_ports: not used with engine_models; their instances take consecutive ports "
            "from engine_base_port"
        )
    entries = []
    for number, entry in enumerate(models):
        unknown = sorted(set(entry) - MODEL_ENTRY_KEYS)
        if unknown:
            raise EngineInputError(
                f"engine_models[{number}]: unknown keys {', '.join(unknown)} (expected "
                f"{', '.join(sorted(MODEL_ENTRY_KEYS))})"
            )
        entry = dict(entry)
        entry.setdefault(
            "gpu_memory_utilization",
            settings.get(
                "engine_gpu_memory_utilization", _placement.DEFAULT_GPU_MEMORY_UTILIZATION
            ),
        )
        entries.append((f"engine_models[{number}].", entry))
    return entries


def _entry_variable(prefix: str, name: str) -> str:
    """The variable behind an entry's setting: engine_models[i].<name>, or the engine_* one."""
    if prefix:
        return prefix + name
    single = {
        "model": "engine_model",
        "cpu_instances": "engine_cpu_instances",
        "tensor_parallel_size": "engine_tensor_parallel_size",
        "instances": "engine_instances_per_host",
        "gpu_memory_utilization": "engine_gpu_memory_utilization",
    }
    return single.get(name, "engine_" + name)


def _entry_gpus(
    prefix: str, entry: Mapping[str, Any], gpu_host: Any, taken: dict[int, str]
) -> list[int]:
    """The host GPUs an engine_models entry asks for, checked against the host and the others."""
    where = prefix + "gpus"
    gpus = entry.get("gpus")
    if not isinstance(gpus, list) or not gpus or not all(_placement_int(g) for g in gpus):
        raise EngineInputError(f"{where}: expected a list of the host's GPU indices, got {gpus!r}")
    count = gpu_host.gpu_count
    outside = sorted(g for g in gpus if not 0 <= g < count)
    if outside:
        raise EngineInputError(
            f"{where}: GPU {', '.join(map(str, outside))} is not on this host ({count} GPUs, "
            f"0-{count - 1})"
        )
    repeated = sorted({g for g in gpus if gpus.count(g) > 1})
    shared = sorted(g for g in set(gpus) if g in taken)
    if repeated or shared:
        owner = taken.get(shared[0], "") if shared else ""
        raise EngineInputError(
            f"{where}: GPU {', '.join(map(str, repeated or shared))} "
            + (f"is also given to {owner}" if shared else "is listed twice")
            + ": each model needs GPUs of its own"
        )
    return list(gpus)


# Placement fields an engine_models entry sets itself (errors name the entry's key).
_ENTRY_FIELDS = ("model", "tensor_parallel_size", "instances", "gpu_memory_utilization")


def _placement_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def host_instances(
    host: str, settings: Mapping[str, Any], peers: PeerSettings | None = None
) -> list[dict[str, Any]]:
    """The engine instances of one host, in order; raises EngineInputError on bad input.
    peers gives the other hosts' settings, needed where engine_span_hosts is set."""
    _choice(settings, "engine_type", ENGINE_TYPES)
    device = _choice(settings, "engine_device", ENGINE_DEVICES)
    if settings.get("engine_span_hosts"):
        return [_span_instance(host, settings, peers)]
    reserved = settings.get("engine_reserved_ports") or []
    entries = _entries(settings)
    gpu_source = "engine_host_gpus"
    gpu_host = host_spec = None
    if device == "gpu":
        gpu_host, gpu_source = _gpu_host(settings)
        check_gpu_facts(settings, gpu_host, gpu_source)
        try:
            host_spec = _placement.host_from_dict(gpu_host)
        except _placement.PlacementInputError as error:
            message = str(error).split(": ", 1)[1]
            raise EngineInputError(f"{_variable(error.field, gpu_source)}: {message}") from None
    next_port = settings.get("engine_base_port", _placement.DEFAULT_BASE_PORT)
    taken: dict[int, str] = {}
    served_names: dict[str, str] = {}
    directories: dict[str, str] = {}
    instances: list[dict[str, Any]] = []
    for prefix, entry in entries:
        model = entry.get("model")
        if not isinstance(model, Mapping) or not model.get("name"):
            raise EngineInputError(
                f"{_entry_variable(prefix, 'model')}: expected a mapping with at least a name"
            )
        _check_task(model, _entry_variable(prefix, "model"), settings)
        served = str(entry.get("served_model_name") or model["name"])
        if served in served_names:
            raise EngineInputError(
                f"{prefix}served_model_name: {served!r} is served by {served_names[served]} "
                "already: each model of a host needs its own served name"
            )
        served_names[served] = prefix.rstrip(".") or "engine_model"
        directory = str(entry.get("dir_name") or model["name"])
        if directory in directories:
            raise EngineInputError(
                f"{prefix}dir_name: model directory {directory!r} is used by "
                f"{directories[directory]} already: give each model its own dir_name"
            )
        directories[directory] = prefix.rstrip(".") or "engine_model"
        ports = settings.get("engine_ports") or None
        gpus: list[int] = []
        try:
            if device == "cpu":
                count = _placement.positive_int(
                    entry.get("cpu_instances", 1), _entry_variable(prefix, "cpu_instances")
                )
                options = _placement.options_from_kwargs(
                    base_port=next_port, ports=ports, reserved_ports=reserved
                )
                placed = [
                    _placement.Instance(index=i, gpus=(), port=port)
                    for i, port in enumerate(_placement._ports(count, options))
                ]
                tp = None
                context = model.get("context_length")
            else:
                if host_spec is None:  # set above for every GPU host
                    raise AssertionError("a GPU instance without its host's GPUs")
                if prefix:
                    gpus = _entry_gpus(prefix, entry, host_spec, taken)
                    model_host = _placement.HostSpec(
                        gpu_count=len(gpus),
                        gpu_memory_gb=host_spec.gpu_memory_gb,
                        nvlink_domain_size=min(len(gpus), host_spec.nvlink_domain_size),
                    )
                else:
                    gpus = list(range(host_spec.gpu_count))
                    model_host = host_spec
                kwargs: dict[str, Any] = {
                    "base_port": next_port,
                    "ports": ports,
                    "reserved_ports": reserved,
                    "gpu_memory_utilization": entry.get("gpu_memory_utilization"),
                }
                for option in ("tensor_parallel_size", "instances"):
                    if entry.get(option):
                        kwargs[option] = entry[option]
                plan = _placement.place(
                    _placement.model_from_dict(model),
                    model_host,
                    _placement.options_from_kwargs(**kwargs),
                )
                if not plan.fits:
                    where = _entry_variable(prefix, "model")
                    raise EngineInputError(
                        f"{where}: {plan.reason} ({prefix + 'gpus' if prefix else gpu_source})"
                    )
                placed = [
                    _placement.Instance(
                        index=instance.index,
                        gpus=tuple(gpus[g] for g in instance.gpus),
                        port=instance.port,
                    )
                    for instance in plan.instances
                ]
                tp = plan.tensor_parallel_size
                context = plan.max_model_len
        except _placement.PlacementInputError as error:
            head = error.field.partition(".")[0].partition("[")[0]
            if prefix and head in _ENTRY_FIELDS:
                field = prefix + error.field
            else:
                field = _variable(error.field, gpu_source)
            message = str(error).split(": ", 1)[1]
            raise EngineInputError(f"{field}: {message}") from None
        for gpu in gpus:
            taken[gpu] = prefix.rstrip(".") or "engine_model"
        max_len = entry.get("max_model_len") or context
        for instance in placed:
            entry_out = _instance(
                host,
                len(instances),
                settings,
                model=model,
                port=instance.port,
                gpus=list(instance.gpus),
                tensor_parallel_size=tp,
                max_model_len=max_len,
                gpu_memory_utilization=entry.get("gpu_memory_utilization"),
                served=served,
                directory=directory,
                source=entry.get("source"),
            )
            if prefix:
                entry_out["model_entry"] = int(prefix[len("engine_models[") : prefix.index("]")])
            instances.append(entry_out)
        if placed:
            next_port = max(instance.port for instance in placed) + 1
    return instances


# An instance across hosts (engine_span_hosts): settings every host of it must share, since each
# host starts its part from its own copy (the engine, the model and the launcher's rendezvous).
_SPAN_SHARED = (
    "engine_type",
    "engine_mode",
    "engine_device",
    "engine_model",
    "engine_served_model_name",
    "engine_model_dir_name",
    "engine_max_model_len",
    "engine_gpu_memory_utilization",
    "engine_tls",
    "engine_span_master_port",
    "engine_span_interface",
)
# Settings an instance across hosts takes from its placement instead.
_SPAN_UNUSED = ("engine_models", "engine_tensor_parallel_size", "engine_instances_per_host")


def _span_hosts(host: str, settings: Mapping[str, Any]) -> list[str]:
    hosts = settings.get("engine_span_hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise EngineInputError(
            f"engine_span_hosts: expected a list of inventory host names, head first, got {hosts!r}"
        )
    if len(hosts) < 2:
        raise EngineInputError(
            f"engine_span_hosts: expected two or more hosts for one instance across them, got "
            f"{hosts!r}; leave it empty for instances inside one host"
        )
    if len(set(hosts)) != len(hosts):
        raise EngineInputError(f"engine_span_hosts: {hosts!r} lists a host twice")
    if host not in hosts:
        raise EngineInputError(
            f"engine_span_hosts: {hosts!r} leaves out {host} itself: every host of the instance "
            "lists the same hosts, head first"
        )
    return hosts


def _span_members(
    host: str, hosts: list[str], settings: Mapping[str, Any], peers: PeerSettings | None
) -> dict[str, Mapping[str, Any]]:
    """Every host's settings, checked to describe the same instance."""
    members: dict[str, Mapping[str, Any]] = {}
    for other in hosts:
        if other == host:
            members[other] = settings
            continue
        if peers is None:
            raise EngineInputError(
                f"engine_span_hosts: the variables of {other} are needed and were not given"
            )
        try:
            members[other] = peers(other)
        except KeyError:
            raise EngineInputError(
                f"engine_span_hosts: {other} is not a host of the inventory"
            ) from None
        theirs = members[other]
        if theirs.get("engine_span_hosts") != hosts:
            raise EngineInputError(
                f"engine_span_hosts: {other} lists {theirs.get('engine_span_hosts')!r} and "
                f"{host} lists {hosts!r}: every host of one instance lists the same hosts, head "
                "first"
            )
        for name in _SPAN_SHARED:
            if theirs.get(name) != settings.get(name):
                raise EngineInputError(
                    f"{name}: {host} has {settings.get(name)!r} and {other} has "
                    f"{theirs.get(name)!r}: the hosts of one instance run the same engine, "
                    "model and settings"
                )
    return members


def _span_gpus(
    host: str, members: Mapping[str, Mapping[str, Any]]
) -> tuple[_placement.HostSpec, str]:
    """The GPUs of each host of the instance: the same on every one."""
    specs = {}
    for other, theirs in members.items():
        try:
            gpu_host, source = _gpu_host(theirs)
        except EngineInputError as error:
            raise EngineInputError(f"{error} ({other})") from None
        if other == host:
            check_gpu_facts(theirs, gpu_host, source)
        try:
            specs[other] = (_placement.host_from_dict(gpu_host), source, theirs)
        except _placement.PlacementInputError as error:
            message = str(error).split(": ", 1)[1]
            raise EngineInputError(
                f"{_variable(error.field, source)}: {message} ({other})"
            ) from None
    spec, source = specs[host][:2]
    for other, (their_spec, _their_source, theirs) in specs.items():
        if their_spec != spec:
            raise EngineInputError(
                f"{source}: the hosts of one instance need the same GPUs, but {host} has "
                f"{_describe_gpus(spec, settings=members[host])} and {other} has "
                f"{_describe_gpus(their_spec, settings=theirs)}"
            )
    return spec, source


def _describe_gpus(spec: _placement.HostSpec, settings: Mapping[str, Any]) -> str:
    profile = "" if settings.get("engine_host_gpus") else settings.get("nvidia_driver_profile")
    text = f"{spec.gpu_count} x {spec.gpu_memory_gb:g} GB"
    return f"{text} ({profile})" if profile else text


def _span_fabric(
    hosts: list[str],
    members: Mapping[str, Mapping[str, Any]],
    interconnect: str,
    model: str,
    device: str,
) -> None:
    """NVLink across trays needs one IMEX domain; the network needs its interface named."""
    if interconnect == _placement.NVLINK:
        racks: dict[str, list[str]] = {}
        for other in hosts:
            rack = members[other].get("nvidia_driver_imex_rack_group") or ""
            if not rack:
                raise EngineInputError(
                    f"nvidia_driver_imex_rack_group: {other} has none, but {model} runs tensor "
                    "parallel across trays over NVLink, which needs the rack's IMEX domain: set "
                    "the rack's inventory group"
                )
            racks.setdefault(str(rack), []).append(other)
        if len(racks) > 1:
            where = "; ".join(f"{rack}: {', '.join(names)}" for rack, names in racks.items())
            raise EngineInputError(
                f"engine_span_hosts: the hosts are in {len(racks)} NVLink domains ({where}); "
                "tensor parallel runs inside one NVL72 rack: list trays of one rack"
            )
    elif device == "gpu" and not members[hosts[0]].get("engine_span_interface"):
        raise EngineInputError(
            f"engine_span_interface: empty, but {model} runs across {len(hosts)} hosts over the "
            "network: name the interface of the InfiniBand or RoCE fabric (e.g. ib0, bond0) that "
            "NCCL and Gloo use between them"
        )


def _span_instance(
    host: str, settings: Mapping[str, Any], peers: PeerSettings | None
) -> dict[str, Any]:
    """This host's part of one instance across the hosts of engine_span_hosts: the first host
    (the head) serves it; the others (workers) run its other ranks and serve nothing."""
    hosts = _span_hosts(host, settings)
    for name in _SPAN_UNUSED:
        if settings.get(name):
            raise EngineInputError(
                f"{name}: not used with engine_span_hosts: an instance across hosts serves "
                "engine_model on every GPU it needs, with the sizes its placement chooses"
            )
    engine = str(settings["engine_type"])
    if engine != "vllm":
        raise EngineInputError(
            f"engine_span_hosts: engine_type {engine} cannot span hosts here: instances across "
            "hosts use vLLM's multi-node launcher (TensorRT-LLM runs across hosts under MPI, "
            "which the engine role does not start; see docs/engines.md)"
        )
    members = _span_members(host, hosts, settings, peers)
    head = members[hosts[0]]
    model = settings.get("engine_model")
    if not isinstance(model, Mapping) or not model.get("name"):
        raise EngineInputError("engine_model: expected a mapping with at least a name")
    reserved = [int(port) for port in head.get("engine_reserved_ports") or []]
    master: Any = head.get("engine_span_master_port")
    if not _placement_int(master) or not 1 <= master <= 65535:
        raise EngineInputError(
            f"engine_span_master_port: expected a port number 1-65535, got {master!r}"
        )
    options: dict[str, Any] = {
        "base_port": head.get("engine_base_port", _placement.DEFAULT_BASE_PORT),
        "ports": head.get("engine_ports") or None,
        "reserved_ports": reserved,
    }
    gpus: list[int] = []
    try:
        if settings["engine_device"] == "cpu":
            # No GPUs to size by: one tensor parallel rank per host (vLLM's CPU build runs
            # pipeline stages across hosts up to its health check, then fails the first request).
            tp, pp, interconnect = len(hosts), 1, _placement.NETWORK
            heads = model.get("attention_heads")
            if heads and int(heads) % tp:
                raise EngineInputError(
                    f"engine_span_hosts: {tp} hosts, one tensor parallel rank each, do not divide "
                    f"the {heads} attention heads of {model['name']} (engine_model.attention_heads)"
                )
            context = model.get("context_length")
            (port,) = _placement._ports(1, _placement.options_from_kwargs(**options))
        else:
            spec, source = _span_gpus(host, members)
            plan = _placement.place(
                _placement.model_from_dict(model),
                spec,
                _placement.options_from_kwargs(
                    **options,
                    gpu_memory_utilization=settings.get("engine_gpu_memory_utilization"),
                    max_nodes=len(hosts),
                ),
            )
            if not plan.fits:
                raise EngineInputError(f"engine_model: {plan.reason} ({source})")
            nodes = plan.nodes_per_instance or 1
            if nodes == 1:
                raise EngineInputError(
                    f"engine_span_hosts: {model['name']} fits on one host (tensor_parallel_size "
                    f"{plan.tensor_parallel_size}); serve it on each host instead of across "
                    f"{len(hosts)}"
                )
            if nodes != len(hosts):
                raise EngineInputError(
                    f"engine_span_hosts: {len(hosts)} hosts listed, but {model['name']} spans "
                    f"{nodes} (tensor_parallel_size {plan.tensor_parallel_size} x "
                    f"pipeline_parallel_size {plan.pipeline_parallel_size}): list {nodes}"
                )
            tp, pp = plan.tensor_parallel_size or 1, plan.pipeline_parallel_size or 1
            interconnect = plan.interconnect or _placement.NETWORK
            (instance,) = plan.instances
            port, gpus, context = instance.port, list(instance.gpus), plan.max_model_len
    except _placement.PlacementInputError as error:
        message = str(error).split(": ", 1)[1]
        raise EngineInputError(f"{_variable(error.field, 'engine_host_gpus')}: {message}") from None
    if master == port:
        raise EngineInputError(
            f"engine_span_master_port: {master} is also the instance's port on the head "
            f"{hosts[0]} (engine_base_port, engine_ports): choose another"
        )
    if master in reserved:
        raise EngineInputError(
            f"engine_span_master_port: {master} is reserved on engine hosts "
            f"(engine_reserved_ports: {', '.join(map(str, reserved))})"
        )
    _span_fabric(hosts, members, interconnect, str(model["name"]), str(settings["engine_device"]))
    rank = hosts.index(host)
    max_len = settings.get("engine_max_model_len") or context
    entry = _instance(
        host,
        0,
        settings,
        model=model,
        port=port,
        gpus=gpus,
        tensor_parallel_size=tp,
        max_model_len=max_len,
        gpu_memory_utilization=settings.get("engine_gpu_memory_utilization"),
    )
    entry["pipeline_parallel_size"] = pp
    entry["serves"] = rank == 0
    entry["server"] = f"{hosts[0]}-0"
    entry["span"] = {
        "instance": f"{hosts[0]}-0",
        "hosts": list(hosts),
        "head": hosts[0],
        "rank": rank,
        "role": "head" if rank == 0 else "worker",
        "nnodes": len(hosts),
        "head_address": host_address(head, hosts[0]),
        "master_port": master,
        "interface": str(settings.get("engine_span_interface") or ""),
        "interconnect": interconnect,
        "addresses": [host_address(members[other], other) for other in hosts],
    }
    return entry


def _instance(
    host: str,
    index: int,
    settings: Mapping[str, Any],
    *,
    model: Mapping[str, Any],
    port: int,
    gpus: list[int],
    tensor_parallel_size: int | None,
    max_model_len: Any,
    gpu_memory_utilization: Any,
    served: str | None = None,
    directory: str | None = None,
    source: Any = None,
) -> dict[str, Any]:
    """One instance as every consumer sees it (the role, the gateways, Prometheus)."""
    served = served or str(settings.get("engine_served_model_name") or model["name"])
    directory = directory or str(settings.get("engine_model_dir_name") or model["name"])
    max_len = int(max_model_len) if max_model_len else None
    entry: dict[str, Any] = {
        "name": f"{host}-{index}",
        "host": host,
        "index": index,
        "engine": str(settings["engine_type"]),
        "device": str(settings["engine_device"]),
        "model": served,
        "backend": _routing.backend_name(served),
        "model_settings": {"engine_model": dict(model), "max_model_len": max_len},
        "model_dir_name": directory,
        "model_source": source or settings.get("engine_model_source") or {"type": "none"},
        "address": host_address(settings, host),
        "port": port,
        "gpus": list(gpus),
        "cuda_visible_devices": ",".join(str(gpu) for gpu in gpus),
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "unit": UNIT_TEMPLATE.format(index),
        # Answers requests itself (false for the workers of an instance across hosts), and the
        # gateways' server that carries it (the head's for a worker).
        "serves": True,
        "server": f"{host}-{index}",
        # HTTPS with the host's certificate (vLLM's own TLS; engine_tls).
        "tls": str(settings.get("engine_tls", True)).lower() in ("true", "yes", "on", "1"),
    }
    weight = settings.get("engine_gateway_weight")
    if weight:
        entry["weight"] = int(weight)
    return entry


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


def peer_settings(
    defaults: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]]
) -> PeerSettings:
    """Other hosts' settings from hostvars (KeyError for a host the inventory lacks)."""

    def settings_of(host: str) -> Mapping[str, Any]:
        if host not in hostvars:
            raise KeyError(host)
        return host_settings(defaults, hostvars[host])

    return settings_of


def serves(instance: Mapping[str, Any]) -> bool:
    """Whether the instance answers requests itself: not a worker of an instance across hosts
    (the gateways, Prometheus and the firewall see its head alone)."""
    return bool(instance.get("serves", True))


def backends(
    hosts: list[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any],
    details: bool = False,
) -> list[dict[str, Any]]:
    """Every instance that serves, of every host, as haproxy_engines entries ({name, host,
    address, port, model, model_settings, weight?}), or with every field when details is true.
    Workers of instances across hosts serve nothing and are left out."""
    peers = peer_settings(defaults, hostvars)
    result = []
    for host in hosts:
        try:
            instances = host_instances(host, host_settings(defaults, hostvars[host]), peers)
        except EngineInputError as error:
            raise EngineInputError(f"{host}: {error}") from None
        for instance in filter(serves, instances):
            if details:
                result.append(instance)
            else:
                keys = ("name", "host", "address", "port", "model", "model_settings", "weight")
                result.append({key: instance[key] for key in (*keys, "tls") if key in instance})
    return result
