"""Engine placement: tensor-parallel size, GPU sets and ports of the engine instances on a host.

One implementation, imported by the onprem.llm.engine_plan filter and by the onprem_llm planner,
so it is pure standard library and imports nothing else from either package.

Memory model (GB = 10^9 bytes; GPU sizes are NVIDIA's quoted capacities, a little below what
nvidia-smi reports, so plans err on the safe side):

    weights     = parameters x bytes per parameter
                  (fp32 4; bf16/fp16 2; fp8/int8 1; int4/awq/gptq/fp4 0.5)
    kv_reserved = max(weights x kv_cache_headroom,
                      kv_bytes_per_token x context_length x min_sequences)
    required    = weights + kv_reserved, split evenly over the instance's GPUs
    usable      = GPU memory x gpu_memory_utilization (default 0.9, as vLLM)

The headroom fraction (default 0.2) stands for KV cache and activations when the model's KV size
per token is unknown; with kv_bytes_per_token the context length sizes the KV cache exactly.
Tensor parallelism splits the weights over tp GPUs, but the KV cache only over the KV heads:
with kv_heads KV heads each rank holds kv_reserved / min(tp, kv_heads), so a GQA cache is
replicated once tp exceeds its KV heads, and a multi-head latent attention cache (DeepSeek,
kv_heads 1) is held whole by every rank. An instance fits at tp when
weights / tp + kv_reserved / min(tp, kv_heads) <= usable. tp must divide the attention heads
(vLLM refuses otherwise). The smallest power-of-two tp that fits, divides the host's GPU count
and stays inside one NVLink domain is chosen; then as many instances as the host holds, on
consecutive ports from base_port.
A host is a mapping of gpu_count, gpu_memory_gb (or gpu_memory_mib) and nvlink_domain_size,
or the onprem_gpu fact of the gpu_facts module as it is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "float32": 4.0,
    "bf16": 2.0,
    "bfloat16": 2.0,
    "fp16": 2.0,
    "float16": 2.0,
    "half": 2.0,
    "fp8": 1.0,
    "float8": 1.0,
    "fp8_e4m3": 1.0,
    "int8": 1.0,
    "w8a8": 1.0,
    "int4": 0.5,
    "w4a16": 0.5,
    "awq": 0.5,
    "gptq": 0.5,
    "fp4": 0.5,
    "nvfp4": 0.5,
    "mxfp4": 0.5,
}

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
DEFAULT_KV_CACHE_HEADROOM = 0.2
DEFAULT_BASE_PORT = 8000
MIB_TO_GB = 1024 * 1024 / 1e9
# Pipeline stages over more HGX nodes than this are not a plan to stand behind.
MAX_PIPELINE_NODES = 8
NVLINK = "nvlink"
NETWORK = "network"


class PlacementInputError(ValueError):
    """Input that cannot be placed at all; the message starts with the field's name."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


@dataclass(frozen=True)
class ModelSpec:
    """What one engine instance serves."""

    name: str
    params_b: float
    dtype: str
    context_length: int
    quantization: str | None = None
    kv_cache_headroom: float = DEFAULT_KV_CACHE_HEADROOM
    kv_bytes_per_token: float | None = None
    min_sequences: int = 1
    attention_heads: int | None = None  # None: not checked
    kv_heads: int | None = None  # None: the KV cache splits like the weights (older behaviour)

    def kv_shards(self, tp: int) -> int:
        """Over how many of tp ranks the KV cache is split; the rest hold copies."""
        return tp if self.kv_heads is None else max(1, min(tp, self.kv_heads))

    def tp_allowed(self, tp: int) -> bool:
        return self.attention_heads is None or self.attention_heads % tp == 0

    @property
    def weight_format(self) -> str:
        """The format that sets the weights' size: the quantization when there is one."""
        return self.quantization or self.dtype


@dataclass(frozen=True)
class HostSpec:
    """A host's GPUs. NVLink domains are taken as consecutive blocks of GPU indices."""

    gpu_count: int
    gpu_memory_gb: float
    nvlink_domain_size: int

    @property
    def domain_on_host(self) -> int:
        return min(self.gpu_count, self.nvlink_domain_size)


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory one instance needs, whatever its tensor-parallel size."""

    bytes_per_param: float
    weights_gb: float
    kv_reserved_gb: float
    headroom_gb: float | None = None  # weights x headroom: activations, splits like weights
    kv_cache_gb: float | None = None  # the exact KV cache, split over the KV heads only

    @property
    def required_gb(self) -> float:
        return self.weights_gb + self.kv_reserved_gb

    def per_gpu_gb(self, tp: int, kv_shards: int | None = None) -> float:
        """One rank's share: weights and headroom split tp ways, the KV cache kv_shards ways."""
        shards = kv_shards or tp
        if self.headroom_gb is None or self.kv_cache_gb is None:
            return self.weights_gb / tp + self.kv_reserved_gb / shards
        return self.weights_gb / tp + max(self.headroom_gb / tp, self.kv_cache_gb / shards)

    def describe(self, weight_format: str) -> str:
        return (
            f"{self.required_gb:.1f} GB ({self.weights_gb:.1f} GB of {weight_format} weights"
            f" + {self.kv_reserved_gb:.1f} GB KV cache/activation headroom)"
        )


@dataclass(frozen=True)
class Instance:
    """One engine instance: its GPUs and its port."""

    index: int
    gpus: tuple[int, ...]
    port: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "gpus": list(self.gpus),
            "cuda_visible_devices": ",".join(str(gpu) for gpu in self.gpus),
            "port": self.port,
        }


@dataclass(frozen=True)
class Placement:
    """The plan for one host, or its rejection with the reason."""

    model: str
    fits: bool
    memory: MemoryEstimate
    usable_per_gpu_gb: float
    max_model_len: int
    tensor_parallel_size: int | None = None
    instances: tuple[Instance, ...] = ()
    idle_gpus: tuple[int, ...] = ()
    reason: str | None = None
    per_gpu_gb: float | None = None
    pipeline_parallel_size: int = 1
    nodes_per_instance: int = 1
    interconnect: str | None = None  # between the hosts of one instance: nvlink or network

    def to_dict(self) -> dict[str, Any]:
        tp = self.tensor_parallel_size
        return {
            "model": self.model,
            "fits": self.fits,
            "reason": self.reason,
            "tensor_parallel_size": tp,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "nodes_per_instance": self.nodes_per_instance,
            "interconnect": self.interconnect,
            "instances_per_host": len(self.instances),
            "instances": [instance.to_dict() for instance in self.instances],
            "idle_gpus": list(self.idle_gpus),
            "max_model_len": self.max_model_len,
            "memory": {
                "bytes_per_param": self.memory.bytes_per_param,
                "weights_gb": round(self.memory.weights_gb, 3),
                "kv_reserved_gb": round(self.memory.kv_reserved_gb, 3),
                "required_gb": round(self.memory.required_gb, 3),
                "required_per_gpu_gb": (
                    round(self.per_gpu_gb, 3) if tp and self.per_gpu_gb is not None else None
                ),
                "usable_per_gpu_gb": round(self.usable_per_gpu_gb, 3),
            },
        }


@dataclass(frozen=True)
class PlacementOptions:
    """Operator choices; None means "choose for me"."""

    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    tensor_parallel_size: int | None = None
    instances: int | None = None
    base_port: int = DEFAULT_BASE_PORT
    ports: tuple[int, ...] | None = None
    reserved_ports: frozenset[int] = field(default_factory=frozenset)
    max_nodes: int = 1  # hosts one instance may span when it fits no single host


# --- input parsing -----------------------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise PlacementInputError(name, f"expected a number, got {value!r}")
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise PlacementInputError(name, f"expected a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise PlacementInputError(name, f"expected a finite number, got {value!r}")
    return number


def positive_number(value: Any, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise PlacementInputError(name, f"must be greater than 0, got {value!r}")
    return number


def positive_int(value: Any, name: str) -> int:
    number = positive_number(value, name)
    if number != int(number):
        raise PlacementInputError(name, f"expected a whole number, got {value!r}")
    return int(number)


def fraction(value: Any, name: str, *, allow_zero: bool = False) -> float:
    number = _number(value, name)
    low_ok = number >= 0 if allow_zero else number > 0
    if not low_ok or number > 1:
        bounds = "0 to 1" if allow_zero else "above 0 and at most 1"
        raise PlacementInputError(name, f"must be {bounds}, got {value!r}")
    return number


def port_number(value: Any, name: str) -> int:
    number = _number(value, name)
    if number != int(number) or not 1 <= number <= 65535:
        raise PlacementInputError(name, f"expected a port number 1-65535, got {value!r}")
    return int(number)


def bytes_per_param(weight_format: Any, name: str = "dtype") -> float:
    key = str(weight_format).strip().lower()
    if key not in BYTES_PER_PARAM:
        known = ", ".join(sorted(BYTES_PER_PARAM))
        raise PlacementInputError(name, f"unknown format {weight_format!r} (known: {known})")
    return BYTES_PER_PARAM[key]


def _require(spec: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in spec or spec[key] is None:
        raise PlacementInputError(f"{where}.{key}", "is required")
    return spec[key]


def _check_keys(spec: Any, allowed: Iterable[str], where: str) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise PlacementInputError(where, f"expected a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise PlacementInputError(
            f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})"
        )
    return spec


_MODEL_KEYS = (
    "name",
    "params_b",
    "dtype",
    "quantization",
    "context_length",
    "kv_cache_headroom",
    "kv_bytes_per_token",
    "min_sequences",
    "attention_heads",
    "kv_heads",
)
_HOST_KEYS = ("gpu_count", "gpu_memory_gb", "gpu_memory_mib", "nvlink_domain_size")


def model_from_dict(spec: Any, where: str = "model") -> ModelSpec:
    """Validate a model mapping; every error names the field."""
    spec = _check_keys(spec, _MODEL_KEYS, where)
    dtype = str(_require(spec, "dtype", where)).strip().lower()
    bytes_per_param(dtype, f"{where}.dtype")
    quantization = spec.get("quantization")
    if quantization is not None:
        quantization = str(quantization).strip().lower()
        bytes_per_param(quantization, f"{where}.quantization")
    headroom_field = f"{where}.kv_cache_headroom"
    headroom = _number(spec.get("kv_cache_headroom", DEFAULT_KV_CACHE_HEADROOM), headroom_field)
    if headroom < 0:
        raise PlacementInputError(headroom_field, f"must be 0 or more, got {headroom:g}")
    kv_bytes = spec.get("kv_bytes_per_token")
    return ModelSpec(
        name=str(spec.get("name") or "model"),
        params_b=positive_number(_require(spec, "params_b", where), f"{where}.params_b"),
        dtype=dtype,
        quantization=quantization,
        context_length=positive_int(
            _require(spec, "context_length", where), f"{where}.context_length"
        ),
        kv_cache_headroom=headroom,
        kv_bytes_per_token=(
            None if kv_bytes is None else positive_number(kv_bytes, f"{where}.kv_bytes_per_token")
        ),
        min_sequences=positive_int(spec.get("min_sequences", 1), f"{where}.min_sequences"),
        attention_heads=_optional_int(spec, "attention_heads", where),
        kv_heads=_optional_int(spec, "kv_heads", where),
    )


def _optional_int(spec: Mapping[str, Any], key: str, where: str) -> int | None:
    value = spec.get(key)
    return None if value is None else positive_int(value, f"{where}.{key}")


# NVLink domain by the gpu_facts module's hardware profile; other hosts report no NVLink
# fabric, so each GPU is its own domain unless the inventory says otherwise.
_PROFILE_DOMAINS = {"gb200_nvl72": 72}


def host_from_gpu_facts(facts: Mapping[str, Any], where: str = "host") -> HostSpec:
    """A host from the onprem_gpu fact of the gpu_facts module; the smallest GPU counts."""
    gpu_count = positive_int(facts.get("gpu_count"), f"{where}.gpu_count")
    gpus = facts.get("gpus") or []
    memories = []
    for index, gpu in enumerate(gpus):
        value = gpu.get("memory_total_mib") if isinstance(gpu, Mapping) else None
        memories.append(positive_number(value, f"{where}.gpus[{index}].memory_total_mib"))
    if len(memories) != gpu_count:
        raise PlacementInputError(f"{where}.gpus", f"lists {len(memories)} GPUs, not {gpu_count}")
    profile = str(facts.get("hardware_profile") or "")
    if profile in _PROFILE_DOMAINS:
        domain = _PROFILE_DOMAINS[profile]
    elif facts.get("nvswitch_present") or facts.get("nvlink5_present"):
        domain = gpu_count
    else:
        domain = 1
    return HostSpec(gpu_count, min(memories) * MIB_TO_GB, domain)


def host_from_dict(spec: Any, where: str = "host") -> HostSpec:
    """Validate a host mapping; GPU memory in GB, or in MiB as nvidia-smi reports it.
    The onprem_gpu fact of the gpu_facts module is accepted as it is."""
    if isinstance(spec, Mapping) and "gpus" in spec and "hardware_profile" in spec:
        return host_from_gpu_facts(spec, where)
    spec = _check_keys(spec, _HOST_KEYS, where)
    gpu_count = positive_int(_require(spec, "gpu_count", where), f"{where}.gpu_count")
    if spec.get("gpu_memory_gb") is not None:
        memory_gb = positive_number(spec["gpu_memory_gb"], f"{where}.gpu_memory_gb")
    elif spec.get("gpu_memory_mib") is not None:
        memory_gb = positive_number(spec["gpu_memory_mib"], f"{where}.gpu_memory_mib") * MIB_TO_GB
    else:
        raise PlacementInputError(f"{where}.gpu_memory_gb", "is required (or gpu_memory_mib)")
    domain = spec.get("nvlink_domain_size")
    return HostSpec(
        gpu_count=gpu_count,
        gpu_memory_gb=memory_gb,
        nvlink_domain_size=(
            gpu_count if domain is None else positive_int(domain, f"{where}.nvlink_domain_size")
        ),
    )


def options_from_kwargs(**kwargs: Any) -> PlacementOptions:
    """Validate the filter's keyword options."""
    known = {"gpu_memory_utilization", "tensor_parallel_size", "instances", "base_port", "ports"}
    known |= {"reserved_ports", "max_nodes"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise PlacementInputError(unknown[0], f"unknown option (known: {', '.join(sorted(known))})")
    tp = kwargs.get("tensor_parallel_size")
    instances = kwargs.get("instances")
    ports = kwargs.get("ports")
    reserved = kwargs.get("reserved_ports") or ()
    if isinstance(reserved, (str, Mapping)) or not isinstance(reserved, Iterable):
        raise PlacementInputError("reserved_ports", f"expected a list of ports, got {reserved!r}")
    return PlacementOptions(
        gpu_memory_utilization=fraction(
            kwargs.get("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION),
            "gpu_memory_utilization",
        ),
        tensor_parallel_size=None if tp is None else positive_int(tp, "tensor_parallel_size"),
        instances=None if instances is None else positive_int(instances, "instances"),
        base_port=port_number(kwargs.get("base_port", DEFAULT_BASE_PORT), "base_port"),
        ports=None if ports is None else _port_list(ports, "ports"),
        reserved_ports=frozenset(
            port_number(port, f"reserved_ports[{i}]") for i, port in enumerate(reserved)
        ),
        max_nodes=positive_int(kwargs.get("max_nodes", 1), "max_nodes"),
    )


def _port_list(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise PlacementInputError(name, f"expected a list of ports, got {value!r}")
    ports = tuple(port_number(port, f"{name}[{i}]") for i, port in enumerate(value))
    seen: set[int] = set()
    for i, port in enumerate(ports):
        if port in seen:
            raise PlacementInputError(f"{name}[{i}]", f"port {port} is listed twice")
        seen.add(port)
    return ports


# --- the memory model --------------------------------------------------------------------------


def estimate_memory(model: ModelSpec) -> MemoryEstimate:
    """Memory one instance of the model needs in total, before splitting over GPUs."""
    per_param = bytes_per_param(model.weight_format)
    weights_gb = model.params_b * per_param
    headroom = weights_gb * model.kv_cache_headroom
    cache = 0.0
    if model.kv_bytes_per_token is not None:
        cache = model.kv_bytes_per_token * model.context_length * model.min_sequences / 1e9
    return MemoryEstimate(
        bytes_per_param=per_param,
        weights_gb=weights_gb,
        kv_reserved_gb=max(headroom, cache),
        headroom_gb=headroom,
        kv_cache_gb=cache,
    )


def is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


def tensor_parallel_sizes(max_size: int, divides: int | None = None) -> list[int]:
    """Powers of two up to max_size, optionally only those dividing `divides`."""
    sizes = []
    size = 1
    while size <= max_size:
        if divides is None or divides % size == 0:
            sizes.append(size)
        size *= 2
    return sizes


def fits(
    memory: MemoryEstimate, tp: int, usable_per_gpu_gb: float, kv_shards: int | None = None
) -> bool:
    # A small tolerance keeps exact-boundary cases from failing on float rounding.
    return memory.per_gpu_gb(tp, kv_shards) <= usable_per_gpu_gb + 1e-9


def smallest_fitting_tp(
    memory: MemoryEstimate,
    usable_per_gpu_gb: float,
    candidates: Iterable[int],
    model: ModelSpec | None = None,
) -> int | None:
    """The smallest candidate tensor-parallel size whose share fits one GPU, or None.
    With the model, sizes that do not divide its attention heads are skipped and the KV cache
    is split only over its KV heads."""
    for tp in sorted(candidates):
        if model is not None and not model.tp_allowed(tp):
            continue
        shards = model.kv_shards(tp) if model is not None else None
        if fits(memory, tp, usable_per_gpu_gb, shards):
            return tp
    return None


# --- instances across hosts --------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One instance over several hosts: tensor parallel over the trays of an NVLink domain wider
    than a host (GB200 NVL72), else pipeline parallel over whole hosts, tensor parallel inside
    each (HGX over InfiniBand or RoCE)."""

    tp: int
    pp: int
    nodes: int
    interconnect: str

    @property
    def gpus_per_node(self) -> int:
        return self.tp * self.pp // self.nodes


def spans(model: ModelSpec, host: HostSpec, max_nodes: int = MAX_PIPELINE_NODES) -> list[Span]:
    """The ways one instance may span up to max_nodes hosts like this one, smallest first."""
    node = host.gpu_count
    if host.nvlink_domain_size > node:
        return [
            Span(tp, 1, tp // node, NVLINK)
            for tp in tensor_parallel_sizes(host.nvlink_domain_size)
            if tp > node and tp % node == 0 and model.tp_allowed(tp) and tp // node <= max_nodes
        ]
    inside = [t for t in tensor_parallel_sizes(host.domain_on_host, node) if model.tp_allowed(t)]
    if not inside:
        return []
    tp = max(inside)
    last = min(max_nodes, MAX_PIPELINE_NODES)
    return [Span(tp, pp, pp, NETWORK) for pp in range(2, last + 1)]


def head_bound_sizes(model: ModelSpec, host: HostSpec, max_nodes: int) -> list[int]:
    """Tensor parallel sizes across the trays of an NVLink domain that up to max_nodes hosts
    would give but the model's attention heads refuse."""
    node = host.gpu_count
    if host.nvlink_domain_size <= node:
        return []
    return [
        tp
        for tp in tensor_parallel_sizes(host.nvlink_domain_size)
        if tp > node and tp % node == 0 and tp // node <= max_nodes and not model.tp_allowed(tp)
    ]


def span_per_gpu_gb(model: ModelSpec, memory: MemoryEstimate, span: Span) -> float:
    # Pipeline stages split the layers: weights, headroom and KV cache all split pp ways more.
    return memory.per_gpu_gb(span.tp, model.kv_shards(span.tp)) / span.pp


def smallest_span(
    model: ModelSpec, host: HostSpec, usable_per_gpu_gb: float, max_nodes: int
) -> Span | None:
    memory = estimate_memory(model)
    for span in spans(model, host, max_nodes):
        if span_per_gpu_gb(model, memory, span) <= usable_per_gpu_gb + 1e-9:
            return span
    return None


# --- placement on one host ---------------------------------------------------------------------


def _check_requested_tp(tp: int, host: HostSpec, model: ModelSpec | None = None) -> None:
    name = "tensor_parallel_size"
    if model is not None and not model.tp_allowed(tp):
        raise PlacementInputError(
            name, f"{tp} does not divide the model's {model.attention_heads} attention heads"
        )
    if not is_power_of_two(tp):
        raise PlacementInputError(name, f"must be a power of two (1, 2, 4, 8, ...), got {tp}")
    if tp > host.gpu_count:
        raise PlacementInputError(name, f"{tp} is more than the host's {host.gpu_count} GPUs")
    if tp > host.nvlink_domain_size:
        raise PlacementInputError(
            name, f"{tp} spans more than one NVLink domain of {host.nvlink_domain_size} GPUs"
        )
    if host.gpu_count % tp:
        raise PlacementInputError(name, f"{tp} does not divide the host's {host.gpu_count} GPUs")


def _gpu_sets(host: HostSpec, tp: int) -> list[tuple[int, ...]]:
    """Consecutive blocks of tp GPUs, never straddling an NVLink domain boundary."""
    sets = []
    domain = host.nvlink_domain_size
    for start in range(0, host.gpu_count, domain):
        end = min(start + domain, host.gpu_count)
        for first in range(start, end - tp + 1, tp):
            sets.append(tuple(range(first, first + tp)))
    return sets


def _ports(count: int, options: PlacementOptions) -> tuple[int, ...]:
    if options.ports is not None:
        if len(options.ports) < count:
            raise PlacementInputError(
                "ports", f"{len(options.ports)} ports listed for {count} instances"
            )
        ports = options.ports[:count]
        where = "ports"
    else:
        last = options.base_port + count - 1
        if last > 65535:
            raise PlacementInputError(
                "base_port", f"{count} consecutive ports from {options.base_port} pass 65535"
            )
        ports = tuple(range(options.base_port, last + 1))
        where = "base_port"
    clash = sorted(set(ports) & options.reserved_ports)
    if clash:
        raise PlacementInputError(
            where, f"engine ports overlap reserved_ports: {', '.join(map(str, clash))}"
        )
    return ports


def place(model: ModelSpec, host: HostSpec, options: PlacementOptions | None = None) -> Placement:
    """Place engine instances on one host.

    Raises PlacementInputError for input no host could satisfy (it names the field);
    returns a Placement with fits=False and the reason when this host cannot hold the model.
    """
    options = options or PlacementOptions()
    memory = estimate_memory(model)
    usable = host.gpu_memory_gb * options.gpu_memory_utilization
    base = functools.partial(
        Placement,
        model=model.name,
        memory=memory,
        usable_per_gpu_gb=usable,
        max_model_len=model.context_length,
    )
    need = memory.describe(model.weight_format)
    limit = (
        f"{usable:.1f} GB usable per GPU ({host.gpu_memory_gb:.1f} GB x gpu_memory_utilization"
        f" {options.gpu_memory_utilization:g})"
    )

    if options.tensor_parallel_size is not None:
        tp = options.tensor_parallel_size
        _check_requested_tp(tp, host, model)
        if not fits(memory, tp, usable, model.kv_shards(tp)):
            reason = (
                f"{model.name} does not fit at tensor_parallel_size {tp}: it needs {need},"
                f" {memory.per_gpu_gb(tp, model.kv_shards(tp)):.1f} GB per GPU, above the {limit}"
            )
            return base(fits=False, reason=reason)
    else:
        candidates = tensor_parallel_sizes(host.domain_on_host, divides=host.gpu_count)
        candidates = [tp for tp in candidates if model.tp_allowed(tp)] or [1]
        found = smallest_fitting_tp(memory, usable, candidates, model)
        if found is None and options.max_nodes > 1:
            span = smallest_span(model, host, usable, options.max_nodes)
            if span is not None:
                return _spanning(base, model, memory, host, span, options)
        if found is None:
            largest = candidates[-1]
            reason = (
                f"{model.name} does not fit on this host: it needs {need}; even at"
                f" tensor_parallel_size {largest} (the largest within an NVLink domain of"
                f" {host.domain_on_host} GPUs on this host that divides the attention heads)"
                f" that is {memory.per_gpu_gb(largest, model.kv_shards(largest)):.1f} GB per GPU,"
                f" above the {limit}"
            )
            widest = spans(model, host, options.max_nodes)
            if options.max_nodes > 1:
                reason += f"; across up to {options.max_nodes} hosts neither: " + (
                    f"tensor_parallel_size {widest[-1].tp} x pipeline_parallel_size"
                    f" {widest[-1].pp} over {widest[-1].nodes} hosts needs"
                    f" {span_per_gpu_gb(model, memory, widest[-1]):.1f} GB per GPU"
                    if widest
                    else "no split over hosts divides the attention heads"
                )
                refused = head_bound_sizes(model, host, options.max_nodes)
                if widest and refused:
                    reason += (
                        f"; tensor_parallel_size {' and '.join(map(str, refused))} would span more"
                        f" hosts but {'does' if len(refused) == 1 else 'do'} not divide its"
                        f" {model.attention_heads} attention heads"
                    )
            elif host.nvlink_domain_size > host.gpu_count:
                reason += (
                    f"; the NVLink domain spans {host.nvlink_domain_size} GPUs across hosts, so a"
                    " multi-node instance could hold it (max_nodes)"
                )
            return base(fits=False, reason=reason)
        tp = found

    gpu_sets = _gpu_sets(host, tp)
    count = len(gpu_sets)
    if options.instances is not None:
        if options.instances > count:
            raise PlacementInputError(
                "instances",
                f"{options.instances} requested but at most {count} fit at"
                f" tensor_parallel_size {tp} on {host.gpu_count} GPUs",
            )
        count = options.instances
    ports = _ports(count, options)
    instances = tuple(Instance(index=i, gpus=gpu_sets[i], port=ports[i]) for i in range(count))
    used = {gpu for instance in instances for gpu in instance.gpus}
    idle = tuple(gpu for gpu in range(host.gpu_count) if gpu not in used)
    return base(
        fits=True,
        tensor_parallel_size=tp,
        instances=instances,
        idle_gpus=idle,
        per_gpu_gb=memory.per_gpu_gb(tp, model.kv_shards(tp)),
    )


def _spanning(
    base: Callable[..., Placement],
    model: ModelSpec,
    memory: MemoryEstimate,
    host: HostSpec,
    span: Span,
    options: PlacementOptions,
) -> Placement:
    """One instance over span.nodes hosts: every host gives it the same GPUs; the first host
    (the head) serves it on the port."""
    if options.instances not in (None, 1):
        raise PlacementInputError(
            "instances", f"{options.instances} requested, but one instance spans {span.nodes} hosts"
        )
    gpus = tuple(range(span.gpus_per_node))
    (port,) = _ports(1, options)
    return base(
        fits=True,
        tensor_parallel_size=span.tp,
        pipeline_parallel_size=span.pp,
        nodes_per_instance=span.nodes,
        interconnect=span.interconnect,
        instances=(Instance(index=0, gpus=gpus, port=port),),
        idle_gpus=tuple(range(span.gpus_per_node, host.gpu_count)),
        per_gpu_gb=span_per_gpu_gb(model, memory, span),
    )


def engine_plan(model: Any, host: Any, **options: Any) -> dict[str, Any]:
    """Validate plain mappings and place; the dict form the filter and the CLI return."""
    placement = place(model_from_dict(model), host_from_dict(host), options_from_kwargs(**options))
    return placement.to_dict()
