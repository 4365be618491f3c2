"""GPU sizing: how many instances, GPUs, nodes and systems serve a workload on a platform.

Placement within a node is the engine_plan filter's own code (onprem_llm.collection_utils is
plugins/module_utils). Capacity model:

    concurrency            = given, or by Little's law: requests per month / seconds per month
                             x peak-to-average x seconds each request holds a sequence slot
    sequences per instance = min(max_num_seqs,
                                 (usable memory x tp - weights) / (kv_bytes_per_token x context))
    instances              = max(min_instances, ceil(concurrency / sequences per instance))

An instance that does not fit one node may span trays of one NVLink domain (GB200 NVL72);
on HGX platforms the NVLink domain is the node, and pipeline parallelism over the network is
not planned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from onprem_llm.catalog import Platform
from onprem_llm.collection_utils._placement import (
    HostSpec,
    ModelSpec,
    PlacementInputError,
    PlacementOptions,
    estimate_memory,
    place,
    smallest_fitting_tp,
    tensor_parallel_sizes,
)

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Demand:
    """Concurrent sequences to serve at peak, and how that number was reached."""

    concurrency: int
    basis: str


def demand_from_volume(
    requests_per_month: float, peak_to_average: float, seconds_per_request: float
) -> Demand:
    average_rate = requests_per_month / SECONDS_PER_MONTH
    concurrency = math.ceil(average_rate * peak_to_average * seconds_per_request - 1e-9)
    basis = (
        f"{requests_per_month:,.0f} requests/month = {average_rate:.2f}/s on average,"
        f" x {peak_to_average:g} at peak x {seconds_per_request:g} s each"
    )
    return Demand(concurrency=max(concurrency, 0), basis=basis)


@dataclass(frozen=True)
class Sizing:
    """What one platform needs for the workload, or why it cannot serve the model."""

    platform: Platform
    fits: bool
    reason: str | None = None
    tensor_parallel_size: int | None = None
    nodes_per_instance: int = 0
    instances_per_node: int = 0
    sequences_per_instance: int = 0
    instances: int = 0
    gpus: int = 0
    nodes: int = 0
    systems: int = 0
    memory: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform.key,
            "label": self.platform.label,
            "fits": self.fits,
            "reason": self.reason,
            "tensor_parallel_size": self.tensor_parallel_size,
            "nodes_per_instance": self.nodes_per_instance,
            "instances_per_node": self.instances_per_node,
            "sequences_per_instance": self.sequences_per_instance,
            "instances": self.instances,
            "gpus": self.gpus,
            "nodes": self.nodes,
            "systems": self.systems,
            "system": self.platform.system_label,
            "memory": self.memory,
        }


def _sequences_per_instance(
    model: ModelSpec, usable_per_gpu: float, tp: int, weights_gb: float, max_num_seqs: int
) -> int:
    if model.kv_bytes_per_token is None:
        raise PlacementInputError(
            "kv_bytes_per_token",
            "needed to size for concurrency: give it (2 x layers x KV heads x head size x bytes),"
            " use a --model preset, or set --sequences-per-instance",
        )
    per_sequence_gb = model.kv_bytes_per_token * model.context_length / 1e9
    fitting = math.floor((usable_per_gpu * tp - weights_gb) / per_sequence_gb + 1e-9)
    return max(1, min(max_num_seqs, fitting))


def size_platform(
    model: ModelSpec,
    platform: Platform,
    demand: Demand,
    *,
    gpu_memory_utilization: float,
    max_num_seqs: int,
    min_instances: int,
    sequences_per_instance: int | None = None,
) -> Sizing:
    node = HostSpec(
        gpu_count=platform.gpus_per_node,
        gpu_memory_gb=platform.gpu_memory_gb,
        nvlink_domain_size=platform.nvlink_domain_gpus,
    )
    placement = place(model, node, PlacementOptions(gpu_memory_utilization=gpu_memory_utilization))
    memory = estimate_memory(model)
    usable = placement.usable_per_gpu_gb
    if placement.fits:
        tp = placement.tensor_parallel_size or 1
        nodes_per_instance = 1
        per_node = len(placement.instances)
    else:
        # Span nodes only inside one NVLink domain, in whole nodes.
        candidates = [
            size
            for size in tensor_parallel_sizes(platform.nvlink_domain_gpus)
            if size > platform.gpus_per_node and size % platform.gpus_per_node == 0
        ]
        found = smallest_fitting_tp(memory, usable, candidates)
        if found is None:
            return Sizing(platform=platform, fits=False, reason=placement.reason)
        tp = found
        nodes_per_instance = tp // platform.gpus_per_node
        per_node = 0

    sequences = sequences_per_instance or _sequences_per_instance(
        model, usable, tp, memory.weights_gb, max_num_seqs
    )
    instances = max(min_instances, math.ceil(demand.concurrency / sequences))
    if nodes_per_instance == 1:
        nodes = math.ceil(instances / per_node)
        systems = math.ceil(nodes / platform.nodes_per_system)
    else:
        nodes = instances * nodes_per_instance
        # A multi-node instance must stay inside one system's NVLink domain.
        per_system = platform.nodes_per_system // nodes_per_instance
        systems = math.ceil(instances / per_system)
    return Sizing(
        platform=platform,
        fits=True,
        tensor_parallel_size=tp,
        nodes_per_instance=nodes_per_instance,
        instances_per_node=per_node,
        sequences_per_instance=sequences,
        instances=instances,
        gpus=instances * tp,
        nodes=nodes,
        systems=systems,
        memory={
            "weights_gb": round(memory.weights_gb, 3),
            "required_gb": round(memory.required_gb, 3),
            "usable_per_gpu_gb": round(usable, 3),
        },
    )
