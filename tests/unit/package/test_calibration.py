"""The throughput model against published measurements: the table in docs/planner.md.

Source: TensorRT-LLM performance overview, docs/source/performance/perf-overview.md in
NVIDIA/TensorRT-LLM (v1.0): total output tokens/s of one engine instance under maximum load
(trtllm-bench throughput, in-flight batching, every request of the given input/output length),
NVIDIA's FP8 and NVFP4 checkpoints, Llama 3.3 70B (the Llama 3.1 70B architecture).
"""

from __future__ import annotations

import pytest
from onprem_llm.collection_utils._placement import ModelSpec

from onprem_llm.catalog import MODELS, PLATFORMS
from onprem_llm.sizing import Architecture, Efficiency, Layout, Workload, operating_point

SHAPES = [
    (128, 128), (128, 2048), (128, 4096), (500, 2000), (1000, 1000),
    (1000, 2000), (2048, 128), (2048, 2048), (5000, 500), (20000, 2000),
]  # fmt: skip

# (model, platform, TP, weights): published output tokens/s for each of SHAPES, in order.
PUBLISHED = {
    ("llama-3.1-8b", "h100_hgx", 1, "fp8"): (
        28312, 22714, 14325, 17660, 15220, 13899, 3450, 9305, 3459, 1351),
    ("llama-3.1-8b", "h200_hgx", 1, "fp8"): (
        27911, 26221, 18027, 20770, 17744, 16828, 3538, 12194, 3902, 1804),
    ("llama-3.1-70b", "h100_hgx", 2, "fp8"): (
        6378, 6651, 4199, 5222, 4205, 4146, 762, 3082, 898, 437),
    ("llama-3.1-70b", "h200_hgx", 1, "fp8"): (
        3803, 4336, 2872, 3666, 2909, 2994, 442, 2003, 566, 283),
    ("llama-3.1-70b", "b200_hgx", 1, "fp4"): (
        11147, 9922, 6831, 7762, 7007, 6271, 1339, 4783, 1459, 665),
    ("llama-3.1-70b", "gb200_nvl72", 1, "fp4"): (
        12189, 11309, 7849, 9028, 7326, 6513, 1450, 5646, 1602, 755),
    ("llama-3.1-405b", "h100_hgx", 8, "fp8"): (
        3627, 4340, 3116, 3994, 2919, 2895, 453, 2296, 610, 345),
    ("llama-3.1-405b", "h200_hgx", 8, "fp8"): (
        3814, 5348, 4741, 4724, 3330, 3722, 456, 2948, 650, 505),
    ("llama-3.1-405b", "b200_hgx", 4, "fp4"): (
        6281, 8020, 6345, 6244, 5209, 4933, 749, 4212, 1048, 672),
    ("llama-3.1-405b", "gb200_nvl72", 4, "fp4"): (
        6740, 8151, 6608, 6540, 5389, 5135, 797, 4407, 1112, 739),
}  # fmt: skip

# Rows outside +-25%, each named in docs/planner.md: all 405B with long outputs, where the batch
# is set by the KV cache left beside the weights (small on 80 GB H100s) and the model's batch,
# with no engine overheads (activations, CUDA graphs) subtracted, is larger than the engine's.
KNOWN_MISSES = {
    ("llama-3.1-405b", "h100_hgx", 128, 2048),
    ("llama-3.1-405b", "h100_hgx", 128, 4096),
    ("llama-3.1-405b", "h100_hgx", 1000, 2000),
    ("llama-3.1-405b", "h200_hgx", 128, 4096),
    ("llama-3.1-405b", "gb200_nvl72", 128, 4096),
    ("llama-3.1-405b", "gb200_nvl72", 1000, 2000),
}

FP8_KV_CACHE = 0.5  # the checkpoints store the KV cache in FP8: half the 16-bit bytes per token
MAX_BATCH = 2048  # the benchmark lets the batch grow until the KV cache is full


def predicted_output_tokens_per_s(
    key: str, platform_key: str, tp: int, weights: str, prompt: int, completion: int
) -> float:
    preset = MODELS[key]
    model = ModelSpec(
        key,
        preset.params_b,
        weights,
        max(prompt + completion, 8192),
        kv_bytes_per_token=preset.kv_bytes_per_token * FP8_KV_CACHE,
        attention_heads=preset.attention_heads,
        kv_heads=preset.kv_heads,
    )
    arch = Architecture(preset.active_params_b, preset.layers, preset.hidden_size)
    platform = PLATFORMS[platform_key]
    layout = Layout(tp, 1, 1, platform.gpus_per_node // tp, "NVLink")
    workload = Workload(prompt, completion, ttft_slo_s=1e9, tokens_per_s_slo=0.0)
    usable = platform.gpu_memory_gb * 0.9
    eff = Efficiency()
    point = operating_point(model, arch, platform, layout, workload, usable, MAX_BATCH, eff)
    assert not isinstance(point, str), point
    return point.requests_per_s * completion


CASES = [
    pytest.param(*key, *shape, value, id=f"{key[0]}-{key[1]}-tp{key[2]}-{shape[0]}/{shape[1]}")
    for key, values in PUBLISHED.items()
    for shape, value in zip(SHAPES, values, strict=True)
]


@pytest.mark.parametrize(
    ("key", "platform_key", "tp", "weights", "prompt", "completion", "published"), CASES
)
def test_predicted_throughput_is_near_the_published(
    key: str, platform_key: str, tp: int, weights: str, prompt: int, completion: int,
    published: int,
) -> None:  # fmt: skip
    predicted = predicted_output_tokens_per_s(key, platform_key, tp, weights, prompt, completion)
    error = predicted / published - 1
    if (key, platform_key, prompt, completion) in KNOWN_MISSES:
        assert 0.25 < abs(error) <= 0.60, f"{error:+.0%}: move it out of KNOWN_MISSES"
    else:
        assert abs(error) <= 0.25, f"predicted {predicted:,.0f}, published {published:,}"


def test_most_rows_are_within_25_percent() -> None:
    assert len(CASES) == 100 and len(KNOWN_MISSES) == 6
