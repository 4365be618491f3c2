"""GPU sizing: how many instances, GPUs, nodes and systems serve a workload on a platform.

Placement inside a node is the engine_plan filter's own code (onprem_llm.collection_utils is
plugins/module_utils). Throughput comes from first principles (docs/planner.md):

    decode step  = max(weights each GPU reads / (HBM bandwidth x efficiency),
                       linear-layer FLOPs / (tensor-core rate x efficiency))
                   + its share of the batch's KV cache / (HBM bandwidth x efficiency)
                   + tensor-parallel all-reduces
                   weights = its share of those the batch touches (MoE: the experts the
                             batch's tokens route to); attention reads the KV cache in kernels
                             of its own, after the GEMMs, so that time adds rather than overlaps
    prefill      = (2 x active parameters x prompt + attention) FLOPs / (rate x efficiency)
    requests/s   = 1 / (prefill + completion tokens x decode step / batch)   per instance

The batch is the largest that fits the KV cache, --max-num-seqs and both SLOs (TTFT and output
tokens/s per user). Instances = max(--min-instances, throughput-limited, memory-limited).
A model that no node holds spans trays of one NVLink domain (GB200 NVL72, tensor parallel) or
whole HGX nodes over the network (pipeline parallel, as vLLM's multi-node mode does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from onprem_llm.catalog import Platform
from onprem_llm.collection_utils._placement import (
    MAX_PIPELINE_NODES,
    NVLINK,
    HostSpec,
    ModelSpec,
    PlacementOptions,
    Span,
    bytes_per_param,
    estimate_memory,
    place,
    span_per_gpu_gb,
    spans,
)

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Architecture:
    """What the throughput model needs beyond the memory model."""

    active_params_b: float  # parameters each token passes through (MoE: active, else total)
    layers: int
    hidden_size: int


@dataclass(frozen=True)
class Efficiency:
    """Fractions of datasheet peaks that serving engines reach; calibrated in docs/planner.md."""

    weights_bandwidth: float = 0.80  # streaming weights: large contiguous reads
    kv_bandwidth: float = 0.60  # paged attention reads: smaller blocks, one kernel per layer
    compute: float = 0.50  # BF16/FP8 GEMMs at serving batch sizes, with scheduling gaps
    compute_fp4: float = 0.30  # of the FP4 peak: block scales, and attention stays in 8/16 bit
    allreduce_latency_s: float = 10e-6  # one NCCL all-reduce of a decode step
    pipeline_hop_s: float = 30e-6  # one activation send between HGX nodes

    def tensor_rate(self, platform: Platform, weight_format: str) -> float:
        """FLOP/s one GPU sustains on the weights' format."""
        tflops = platform.tflops(weight_format)
        on_fp4 = platform.fp4_tflops > 0 and tflops == platform.fp4_tflops
        return tflops * 1e12 * (self.compute_fp4 if on_fp4 else self.compute)


@dataclass(frozen=True)
class Workload:
    prompt_tokens: int
    completion_tokens: int
    ttft_slo_s: float
    tokens_per_s_slo: float  # output tokens per second each user sees


@dataclass(frozen=True)
class Demand:
    """Peak request rate, and how it was reached."""

    peak_requests_per_s: float
    concurrency: int | None  # given by the user, else derived per platform
    basis: str


def demand_from_volume(
    requests_per_month: float, peak_to_average: float, concurrency: int | None = None
) -> Demand:
    average = requests_per_month / SECONDS_PER_MONTH
    basis = (
        f"{requests_per_month:,.0f} requests/month = {average:.2f}/s on average,"
        f" x {peak_to_average:g} at peak = {average * peak_to_average:.2f}/s"
    )
    if concurrency is not None:
        basis += f"; at least {concurrency:,} concurrent sequences (given)"
    return Demand(average * peak_to_average, concurrency, basis)


@dataclass(frozen=True)
class Layout:
    """How one instance is laid out: tensor parallel inside a domain, pipeline over nodes."""

    tp: int
    pp: int
    nodes_per_instance: int
    instances_per_node: int  # 0 when an instance spans nodes
    interconnect: str

    @property
    def gpus(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True)
class Throughput:
    """One instance's operating point."""

    batch: int
    batch_limit: str  # what capped the batch: memory, max_num_seqs, TTFT SLO, tokens/s SLO
    kv_sequences: int  # requests the KV cache holds at once
    decode_step_s: float
    prefill_s: float
    ttft_s: float
    user_tokens_per_s: float
    requests_per_s: float

    @property
    def output_tokens_per_s(self) -> float:
        return self.requests_per_s  # scaled by the caller; kept for symmetry


@dataclass(frozen=True)
class Sizing:
    """What one platform needs for the workload, or why it cannot serve the model."""

    platform: Platform
    fits: bool
    reason: str | None = None
    layout: Layout | None = None
    throughput: Throughput | None = None
    instances: int = 0
    instances_for_throughput: int = 0
    instances_for_memory: int = 0
    gpus: int = 0
    nodes: int = 0
    systems: int = 0
    memory: dict[str, Any] | None = None

    @property
    def tensor_parallel_size(self) -> int | None:
        return self.layout.tp if self.layout else None

    @property
    def pipeline_parallel_size(self) -> int | None:
        return self.layout.pp if self.layout else None

    def to_dict(self) -> dict[str, Any]:
        layout, point = self.layout, self.throughput
        return {
            "platform": self.platform.key,
            "label": self.platform.label,
            "fits": self.fits,
            "reason": self.reason,
            "tensor_parallel_size": layout.tp if layout else None,
            "pipeline_parallel_size": layout.pp if layout else None,
            "nodes_per_instance": layout.nodes_per_instance if layout else 0,
            "instances_per_node": layout.instances_per_node if layout else 0,
            "interconnect": layout.interconnect if layout else None,
            "throughput": None if point is None else _point_dict(point),
            "instances": self.instances,
            "instances_for_throughput": self.instances_for_throughput,
            "instances_for_memory": self.instances_for_memory,
            "gpus": self.gpus,
            "nodes": self.nodes,
            "systems": self.systems,
            "system": self.platform.system_label,
            "memory": self.memory,
        }


def _point_dict(point: Throughput) -> dict[str, Any]:
    return {
        "batch": point.batch,
        "batch_limit": point.batch_limit,
        "kv_sequences": point.kv_sequences,
        "decode_step_ms": round(point.decode_step_s * 1e3, 3),
        "prefill_ms": round(point.prefill_s * 1e3, 3),
        "ttft_ms": round(point.ttft_s * 1e3, 1),
        "user_tokens_per_s": round(point.user_tokens_per_s, 1),
        "requests_per_s": round(point.requests_per_s, 4),
    }


# --- the throughput model ----------------------------------------------------------------------


def weights_read_gb(model: ModelSpec, arch: Architecture, batch: float) -> float:
    """Weights a decode step reads: a MoE batch touches more experts the larger it is.
    Each token reads the active fraction a; b tokens touch 1 - (1 - a)^b of the weights."""
    total = model.params_b * bytes_per_param(model.weight_format)
    active = min(1.0, arch.active_params_b / model.params_b)
    if active >= 1.0:
        return float(total)
    return float(total * (1.0 - (1.0 - active) ** max(batch, 1.0)))


def _allreduce_s(
    platform: Platform, layout: Layout, arch: Architecture, tokens: float, eff: Efficiency
) -> float:
    """Two all-reduces per layer (attention and MLP) over one stage's layers."""
    if layout.tp == 1:
        return 0.0
    message = tokens * arch.hidden_size * 2  # 16-bit activations
    one_way = platform.nvlink_gb_s * 1e9 / 2
    ring = 2 * (layout.tp - 1) / layout.tp * message / one_way
    return float(arch.layers / layout.pp * 2 * (eff.allreduce_latency_s + ring))


def _hop_s(
    platform: Platform, layout: Layout, arch: Architecture, tokens: float, eff: Efficiency
) -> float:
    if layout.pp == 1:
        return 0.0
    return eff.pipeline_hop_s + tokens * arch.hidden_size * 2 / (platform.scale_out_gb_s * 1e9)


def decode_step_s(
    model: ModelSpec,
    arch: Architecture,
    platform: Platform,
    layout: Layout,
    batch: int,
    context_tokens: float,
    eff: Efficiency,
) -> float:
    """Time for every sequence of the batch to advance one token. With pipeline parallelism the
    batch moves as pp micro-batches, so a step is pp stage times of batch / pp each."""
    pp, gpus = layout.pp, layout.gpus
    micro = batch / pp
    hbm = platform.hbm_tb_s * 1e12
    weights = weights_read_gb(model, arch, micro) * 1e9 / gpus / (hbm * eff.weights_bandwidth)
    kv_per_gpu = (
        micro * context_tokens * (model.kv_bytes_per_token or 0) / model.kv_shards(layout.tp) / pp
    )
    kv = kv_per_gpu / (hbm * eff.kv_bandwidth)
    flops = 2 * arch.active_params_b * 1e9 * micro
    compute = flops / (gpus * eff.tensor_rate(platform, model.weight_format))
    # GEMMs are bound by the weights they stream or by their FLOPs; attention kernels then
    # read the KV cache. The two run one after the other, so their times add.
    stage = max(weights, compute) + kv + _allreduce_s(platform, layout, arch, micro, eff)
    return float(pp * (stage + _hop_s(platform, layout, arch, micro, eff)))


def prefill_flops(arch: Architecture, prompt_tokens: int) -> float:
    # Linear layers plus causal attention scores and values (2 x layers x hidden x prompt^2).
    linear = 2 * arch.active_params_b * 1e9 * prompt_tokens
    return linear + 2 * arch.layers * arch.hidden_size * float(prompt_tokens) ** 2


def prefill_s(
    model: ModelSpec,
    arch: Architecture,
    platform: Platform,
    layout: Layout,
    prompt_tokens: int,
    eff: Efficiency,
) -> tuple[float, float]:
    """(instance time a prompt costs, its latency): pipeline stages overlap other prompts but one
    prompt passes them one after the other."""
    rate = eff.tensor_rate(platform, model.weight_format)
    compute = prefill_flops(arch, prompt_tokens) / (layout.gpus * rate)
    comm = _allreduce_s(platform, layout, arch, prompt_tokens, eff) * layout.pp
    hops = _hop_s(platform, layout, arch, prompt_tokens, eff) * (layout.pp - 1)
    return compute + comm, compute * layout.pp + comm + hops


def kv_sequences(
    model: ModelSpec, layout: Layout, usable_per_gpu_gb: float, tokens_per_sequence: int
) -> int:
    """Requests one instance's KV cache holds: each GPU's room after its share of the weights,
    over its share of one request's cache (replicated beyond the KV heads)."""
    weights = model.params_b * bytes_per_param(model.weight_format) / layout.gpus
    room = usable_per_gpu_gb - weights
    per_sequence = (
        (model.kv_bytes_per_token or 0)
        * tokens_per_sequence
        / model.kv_shards(layout.tp)
        / layout.pp
        / 1e9
    )
    if room <= 0:
        return 0
    # No cache per request, or one so small (a denormal) that the quotient overflows: unbounded.
    sequences = float(room) / float(per_sequence) if per_sequence > 0 else math.inf
    if not math.isfinite(sequences):
        return 10**6
    return math.floor(sequences + 1e-9)


def operating_point(
    model: ModelSpec,
    arch: Architecture,
    platform: Platform,
    layout: Layout,
    workload: Workload,
    usable_per_gpu_gb: float,
    max_num_seqs: int,
    eff: Efficiency,
) -> Throughput | str:
    """The largest batch meeting memory and SLOs, or the reason none does."""
    tokens = min(model.context_length, workload.prompt_tokens + workload.completion_tokens)
    held = kv_sequences(model, layout, usable_per_gpu_gb, tokens)
    if held < 1:
        return (
            f"the KV cache of one {tokens:,}-token request does not fit next to the weights"
            f" at TP {layout.tp} x PP {layout.pp}"
        )
    cap = min(held, max_num_seqs)
    context = workload.prompt_tokens + workload.completion_tokens / 2  # average while decoding
    cost, latency = prefill_s(model, arch, platform, layout, workload.prompt_tokens, eff)

    def point(batch: int) -> tuple[float, float, float]:
        step = decode_step_s(model, arch, platform, layout, batch, context, eff)
        decode = workload.completion_tokens * step / batch
        prefill_share = cost / (cost + decode)  # instance time spent on prompts
        return step, latency + step, (1 - prefill_share) / step

    def meets(batch: int) -> bool:
        _unused, ttft, user = point(batch)
        return ttft <= workload.ttft_slo_s and user >= workload.tokens_per_s_slo

    if not meets(1):
        step, ttft, user = point(1)
        return (
            f"cannot meet the SLOs even one request at a time at TP {layout.tp} x PP {layout.pp}:"
            f" TTFT {ttft:.2f} s (SLO {workload.ttft_slo_s:g} s), {user:.1f} output tokens/s"
            f" per user (SLO {workload.tokens_per_s_slo:g})"
        )
    low, high = 1, cap
    while low < high:  # both SLO figures worsen as the batch grows
        middle = (low + high + 1) // 2
        if meets(middle):
            low = middle
        else:
            high = middle - 1
    batch = low
    if batch < cap:
        _unused, ttft, _unused = point(batch + 1)
        limit = "TTFT SLO" if ttft > workload.ttft_slo_s else "tokens/s SLO"
    else:
        limit = "KV memory" if held <= max_num_seqs else "max_num_seqs"
    step, ttft, user = point(batch)
    rate = 1 / (cost + workload.completion_tokens * step / batch)
    return Throughput(batch, limit, held, step, cost, ttft, user, rate)


# --- layouts per platform ----------------------------------------------------------------------


def _node_layout(
    model: ModelSpec, platform: Platform, gpu_memory_utilization: float
) -> tuple[Layout | None, str | None]:
    """Within one node: the engine_plan filter's own placement."""
    node = HostSpec(platform.gpus_per_node, platform.gpu_memory_gb, platform.nvlink_domain_gpus)
    placement = place(model, node, PlacementOptions(gpu_memory_utilization=gpu_memory_utilization))
    if not placement.fits:
        return None, placement.reason
    tp = placement.tensor_parallel_size or 1
    return Layout(tp, 1, 1, len(placement.instances), "NVLink inside the node"), None


def _spanning_layouts(model: ModelSpec, platform: Platform) -> list[Layout]:
    """Candidates across nodes, smallest first: the engine_plan filter's own spans (TP over
    trays of an NVLink domain larger than a node, else PP over whole HGX nodes at the node's
    full TP)."""
    node = HostSpec(platform.gpus_per_node, platform.gpu_memory_gb, platform.nvlink_domain_gpus)
    return [
        Layout(
            span.tp,
            span.pp,
            span.nodes,
            0,
            f"NVLink across {span.nodes} trays of one NVL72 rack"
            if span.interconnect == NVLINK
            else f"pipeline parallel over {span.pp} nodes: {platform.scale_out_gb_s * 8:g} Gb/s"
            " InfiniBand/RoCE per GPU (vLLM's multi-node launcher)",
        )
        for span in spans(model, node, MAX_PIPELINE_NODES)
    ]


def _fits(model: ModelSpec, layout: Layout, usable: float) -> bool:
    span = Span(layout.tp, layout.pp, layout.nodes_per_instance, "")
    return bool(span_per_gpu_gb(model, estimate_memory(model), span) <= usable + 1e-9)


def size_platform(
    model: ModelSpec,
    arch: Architecture,
    platform: Platform,
    demand: Demand,
    workload: Workload,
    *,
    gpu_memory_utilization: float,
    max_num_seqs: int,
    min_instances: int,
    efficiency: Efficiency | None = None,
) -> Sizing:
    eff = efficiency or Efficiency()
    usable = platform.gpu_memory_gb * gpu_memory_utilization
    layout, reason = _node_layout(model, platform, gpu_memory_utilization)
    if layout is None:
        spanning = [c for c in _spanning_layouts(model, platform) if _fits(model, c, usable)]
        if not spanning:
            largest = _spanning_layouts(model, platform)
            tried = f"TP {largest[-1].tp} x PP {largest[-1].pp}" if largest else "one node"
            return Sizing(
                platform=platform,
                fits=False,
                reason=f"{reason}; across nodes, {tried} does not hold it either",
            )
        layout = spanning[0]
    point = operating_point(model, arch, platform, layout, workload, usable, max_num_seqs, eff)
    if isinstance(point, str):
        return Sizing(platform=platform, fits=False, reason=point, layout=layout)
    for_throughput = math.ceil(demand.peak_requests_per_s / point.requests_per_s - 1e-9)
    concurrency = demand.concurrency
    if concurrency is None:  # Little's law at the operating point
        latency = point.ttft_s + workload.completion_tokens / point.user_tokens_per_s
        concurrency = math.ceil(demand.peak_requests_per_s * latency - 1e-9)
    for_memory = math.ceil(concurrency / point.kv_sequences - 1e-9) if concurrency else 0
    instances = max(min_instances, for_throughput, for_memory)
    nodes, systems = _nodes_and_systems(platform, layout, instances)
    memory = estimate_memory(model)
    return Sizing(
        platform=platform,
        fits=True,
        layout=layout,
        throughput=point,
        instances=instances,
        instances_for_throughput=for_throughput,
        instances_for_memory=for_memory,
        gpus=instances * layout.gpus,
        nodes=nodes,
        systems=systems,
        memory={
            "weights_gb": round(memory.weights_gb, 3),
            "kv_per_request_gb": round(
                (model.kv_bytes_per_token or 0)
                * min(model.context_length, workload.prompt_tokens + workload.completion_tokens)
                / 1e9,
                4,
            ),
            "kv_replicas": layout.tp // model.kv_shards(layout.tp),
            "usable_per_gpu_gb": round(usable, 3),
        },
    )


def _nodes_and_systems(platform: Platform, layout: Layout, instances: int) -> tuple[int, int]:
    if layout.nodes_per_instance == 1:
        nodes = math.ceil(instances / layout.instances_per_node)
        return nodes, math.ceil(nodes / platform.nodes_per_system)
    nodes = instances * layout.nodes_per_instance
    if platform.nodes_per_system == 1:  # HGX: every node is a server bought on its own
        return nodes, nodes
    # A multi-tray instance must stay inside one system's NVLink domain.
    per_system = max(1, platform.nodes_per_system // layout.nodes_per_instance)
    return nodes, math.ceil(instances / per_system)
