"""Engine placement on real hardware and real models, computed with the documented memory model.

Per GPU usable memory at gpu_memory_utilization 0.9: H200 141 GB -> 126.9 GB, GB200 186 GB ->
167.4 GB, H100 80 GB -> 72 GB. Required = weights x 1.2 with the default headroom 0.2.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.module_utils._placement import (
    MIB_TO_GB,
    PlacementInputError,
    engine_plan,
    estimate_memory,
    model_from_dict,
)

H200_HGX = {"gpu_count": 8, "gpu_memory_gb": 141, "nvlink_domain_size": 8}
GB200_TRAY = {"gpu_count": 4, "gpu_memory_gb": 186, "nvlink_domain_size": 72}
H100_HGX = {"gpu_count": 8, "gpu_memory_gb": 80, "nvlink_domain_size": 8}


def model(name: str, params_b: float, dtype: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "params_b": params_b, "dtype": dtype, "context_length": 8192, **extra}


# (model, host, expected tensor-parallel size, expected instances); the comment is the arithmetic.
FITS = [
    # 8B bf16: 16 GB x 1.2 = 19.2 GB fits one GPU -> 8 instances at TP 1.
    pytest.param(model("llama-3.1-8b", 8, "bf16"), H200_HGX, 1, 8, id="llama-3.1-8b-bf16-h200"),
    # 70B bf16: 168 GB; /2 = 84 <= 126.9 on H200; /2 = 84 > 72 but /4 = 42 fits on H100.
    pytest.param(model("llama-3.1-70b", 70, "bf16"), H200_HGX, 2, 4, id="llama-3.1-70b-bf16-h200"),
    pytest.param(model("llama-3.1-70b", 70, "bf16"), H100_HGX, 4, 2, id="llama-3.1-70b-bf16-h100"),
    # 70B fp8: 84 GB fits one H200.
    pytest.param(model("llama-3.1-70b", 70, "fp8"), H200_HGX, 1, 8, id="llama-3.1-70b-fp8-h200"),
    # Scout 109B bf16: 261.6 GB; /2 = 130.8 > 126.9, /4 = 65.4 -> TP 4 x 2 on H200;
    # on a GB200 tray /2 = 130.8 <= 167.4 -> TP 2 x 2.
    pytest.param(model("llama-4-scout", 109, "bf16"), H200_HGX, 4, 2, id="scout-bf16-h200"),
    pytest.param(model("llama-4-scout", 109, "bf16"), GB200_TRAY, 2, 2, id="scout-bf16-gb200"),
    # Scout fp8: 130.8 GB; just above one H200 (126.9) -> TP 2 x 4; one GB200 GPU holds it.
    pytest.param(model("llama-4-scout", 109, "fp8"), H200_HGX, 2, 4, id="scout-fp8-h200"),
    pytest.param(model("llama-4-scout", 109, "fp8"), GB200_TRAY, 1, 4, id="scout-fp8-gb200"),
    # Maverick 400B bf16: 960 GB; /8 = 120 <= 126.9 -> the whole H200 node, one instance.
    pytest.param(model("llama-4-maverick", 400, "bf16"), H200_HGX, 8, 1, id="maverick-bf16-h200"),
    # Maverick fp8: 480 GB; /4 = 120 -> TP 4 x 2 on H200; a GB200 tray at TP 4 (120 <= 167.4).
    pytest.param(model("llama-4-maverick", 400, "fp8"), H200_HGX, 4, 2, id="maverick-fp8-h200"),
    pytest.param(model("llama-4-maverick", 400, "fp8"), GB200_TRAY, 4, 1, id="maverick-fp8-gb200"),
    # Maverick fp8 on H100: /8 = 60 <= 72.
    pytest.param(model("llama-4-maverick", 400, "fp8"), H100_HGX, 8, 1, id="maverick-fp8-h100"),
    # DeepSeek-V3 671B fp8: 805.2 GB; /8 = 100.7 <= 126.9 on H200.
    pytest.param(model("deepseek-v3", 671, "fp8"), H200_HGX, 8, 1, id="deepseek-v3-fp8-h200"),
    # 70B AWQ (0.5 byte): 42 GB fits one H100 (72).
    pytest.param(model("llama-3.1-70b", 70, "bf16", quantization="awq"), H100_HGX, 1, 8, id="awq"),
]


@pytest.mark.parametrize(("spec", "host", "tp", "instances"), FITS)
def test_fits(spec: dict[str, Any], host: dict[str, Any], tp: int, instances: int) -> None:
    plan = engine_plan(spec, host)
    assert plan["fits"] is True, plan["reason"]
    assert plan["tensor_parallel_size"] == tp
    assert plan["instances_per_host"] == instances
    gpus = [gpu for instance in plan["instances"] for gpu in instance["gpus"]]
    assert len(gpus) == len(set(gpus)) == tp * instances
    assert plan["memory"]["required_per_gpu_gb"] <= plan["memory"]["usable_per_gpu_gb"]


# (model, host, words that must be in the reason)
DOES_NOT_FIT = [
    # Maverick bf16 on a GB200 tray: 960 / 4 = 240 > 167.4; the rack's domain could hold it.
    pytest.param(
        model("llama-4-maverick", 400, "bf16"),
        GB200_TRAY,
        ["960.0 GB", "240.0 GB per GPU", "167.4 GB usable", "multi-node"],
        id="maverick-bf16-gb200-tray",
    ),
    # Maverick bf16 on 8 x H100: 960 / 8 = 120 > 72.
    pytest.param(
        model("llama-4-maverick", 400, "bf16"),
        H100_HGX,
        ["800.0 GB of bf16 weights", "tensor_parallel_size 8", "120.0 GB per GPU", "72.0 GB"],
        id="maverick-bf16-h100",
    ),
    # Llama 3.1 405B bf16 on 8 x H100: 972 / 8 = 121.5 > 72.
    pytest.param(model("llama-3.1-405b", 405, "bf16"), H100_HGX, ["121.5 GB"], id="405b-h100"),
    # DeepSeek-V3 bf16 on 8 x H200: 1610.4 / 8 = 201.3 > 126.9.
    pytest.param(model("deepseek-v3", 671, "bf16"), H200_HGX, ["201.3 GB"], id="dsv3-bf16-h200"),
]


@pytest.mark.parametrize(("spec", "host", "words"), DOES_NOT_FIT)
def test_does_not_fit(spec: dict[str, Any], host: dict[str, Any], words: list[str]) -> None:
    plan = engine_plan(spec, host)
    assert plan["fits"] is False
    assert plan["instances"] == []
    for word in words:
        assert word in plan["reason"]


def test_instances_get_consecutive_gpus_and_ports() -> None:
    plan = engine_plan(model("llama-3.1-70b", 70, "bf16"), H200_HGX, base_port=8100)
    assert plan["instances"] == [
        {"index": 0, "gpus": [0, 1], "cuda_visible_devices": "0,1", "port": 8100},
        {"index": 1, "gpus": [2, 3], "cuda_visible_devices": "2,3", "port": 8101},
        {"index": 2, "gpus": [4, 5], "cuda_visible_devices": "4,5", "port": 8102},
        {"index": 3, "gpus": [6, 7], "cuda_visible_devices": "6,7", "port": 8103},
    ]
    assert plan["idle_gpus"] == []
    assert plan["max_model_len"] == 8192


def test_requested_tp_and_instances_leave_idle_gpus() -> None:
    plan = engine_plan(
        model("llama-3.1-8b", 8, "bf16"), H200_HGX, tensor_parallel_size=2, instances=3
    )
    assert [i["gpus"] for i in plan["instances"]] == [[0, 1], [2, 3], [4, 5]]
    assert plan["idle_gpus"] == [6, 7]


def test_requested_tp_that_does_not_fit_is_rejected() -> None:
    plan = engine_plan(model("llama-3.1-70b", 70, "bf16"), H200_HGX, tensor_parallel_size=1)
    assert plan["fits"] is False
    assert "at tensor_parallel_size 1" in plan["reason"]
    assert "168.0 GB per GPU" in plan["reason"]


def test_nvlink_domains_bound_the_gpu_sets() -> None:
    # PCIe cards bridged in pairs: TP 2 stays within a pair, TP 4 would cross bridges.
    pcie = {"gpu_count": 8, "gpu_memory_gb": 80, "nvlink_domain_size": 2}
    plan = engine_plan(model("llama-3.1-70b", 70, "fp8"), pcie)
    assert plan["tensor_parallel_size"] == 2
    assert [i["gpus"] for i in plan["instances"]] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    rejected = engine_plan(model("llama-3.1-70b", 70, "bf16"), pcie)
    assert rejected["fits"] is False
    assert "NVLink domain of 2 GPUs" in rejected["reason"]


def test_smallest_tp_must_divide_the_gpu_count() -> None:
    # Six GPUs: TP 4 does not divide 6, so a model needing more than 2 GPUs does not fit.
    six = {"gpu_count": 6, "gpu_memory_gb": 80}
    assert engine_plan(model("llama-3.1-70b", 70, "fp8"), six)["tensor_parallel_size"] == 2
    assert engine_plan(model("llama-3.1-70b", 70, "bf16"), six)["fits"] is False


def test_memory_from_mib_as_nvidia_smi_reports_it() -> None:
    # 143771 MiB is what nvidia-smi reports for an H200: 150.8 GB, more than the quoted 141.
    plan = engine_plan(
        model("llama-4-scout", 109, "fp8"), {"gpu_count": 8, "gpu_memory_mib": 143771}
    )
    assert plan["memory"]["usable_per_gpu_gb"] == round(143771 * MIB_TO_GB * 0.9, 3)
    assert plan["tensor_parallel_size"] == 1  # 130.8 GB <= 135.7 GB


def test_kv_bytes_per_token_sizes_the_cache_from_the_context() -> None:
    # Llama 3.1 8B: 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 131072 bytes per token.
    spec = model("llama-3.1-8b", 8, "bf16", kv_bytes_per_token=131072, min_sequences=64)
    spec["context_length"] = 131072
    memory = estimate_memory(model_from_dict(spec))
    assert memory.kv_reserved_gb == pytest.approx(131072 * 131072 * 64 / 1e9)  # 1099.5 GB
    plan = engine_plan(spec, H200_HGX)
    # 1115.5 GB needs the whole node: /8 = 139.4 > 126.9, so it does not fit.
    assert plan["fits"] is False
    spec["min_sequences"] = 16  # 274.9 + 16 = 290.9 GB -> TP 4 (72.7 GB per GPU)
    assert engine_plan(spec, H200_HGX)["tensor_parallel_size"] == 4


def test_headroom_is_a_floor_under_the_exact_kv_size() -> None:
    spec = model("llama-3.1-8b", 8, "bf16", kv_bytes_per_token=131072)  # 1.07 GB < 3.2 GB
    assert estimate_memory(model_from_dict(spec)).kv_reserved_gb == pytest.approx(3.2)


def test_numeric_strings_from_extra_vars_are_accepted() -> None:
    spec = {"params_b": "8", "dtype": "BF16", "context_length": "4096"}
    plan = engine_plan(spec, {"gpu_count": "8", "gpu_memory_gb": "141"}, base_port="9000")
    assert plan["instances"][0]["port"] == 9000


# (model overrides, host overrides, options, the field named in the error)
BAD_INPUT = [
    pytest.param({"dtype": "bf17"}, {}, {}, "model.dtype", id="unknown-dtype"),
    pytest.param({"quantization": "int3"}, {}, {}, "model.quantization", id="unknown-quant"),
    pytest.param({"params_b": 0}, {}, {}, "model.params_b", id="zero-params"),
    pytest.param({"params_b": -8}, {}, {}, "model.params_b", id="negative-params"),
    pytest.param({"params_b": True}, {}, {}, "model.params_b", id="bool-params"),
    pytest.param({"params_b": "many"}, {}, {}, "model.params_b", id="text-params"),
    pytest.param({"context_length": 0}, {}, {}, "model.context_length", id="zero-context"),
    pytest.param({"context_length": 8.5}, {}, {}, "model.context_length", id="fraction-context"),
    pytest.param({"kv_cache_headroom": -0.1}, {}, {}, "model.kv_cache_headroom", id="headroom"),
    pytest.param({"kv_bytes_per_token": 0}, {}, {}, "model.kv_bytes_per_token", id="kv-bytes"),
    pytest.param({"layers": 32}, {}, {}, "model.layers", id="unknown-model-key"),
    pytest.param({}, {"gpu_count": 0}, {}, "host.gpu_count", id="zero-gpus"),
    pytest.param({}, {"gpu_memory_gb": -1}, {}, "host.gpu_memory_gb", id="negative-memory"),
    pytest.param({}, {"gpu_memory_gb": None}, {}, "host.gpu_memory_gb", id="no-memory"),
    pytest.param({}, {"nvlink_domain_size": 0}, {}, "host.nvlink_domain_size", id="domain"),
    pytest.param({}, {}, {"tensor_parallel_size": 16}, "tensor_parallel_size", id="tp-over-host"),
    pytest.param({}, {}, {"tensor_parallel_size": 3}, "tensor_parallel_size", id="tp-not-pow2"),
    pytest.param({}, {}, {"tensor_parallel_size": 0}, "tensor_parallel_size", id="tp-zero"),
    pytest.param({}, {}, {"instances": 9}, "instances", id="too-many-instances"),
    pytest.param({}, {}, {"gpu_memory_utilization": 0}, "gpu_memory_utilization", id="util-0"),
    pytest.param({}, {}, {"gpu_memory_utilization": 1.1}, "gpu_memory_utilization", id="util>1"),
    pytest.param({}, {}, {"base_port": 0}, "base_port", id="port-zero"),
    pytest.param({}, {}, {"base_port": 65530}, "base_port", id="ports-past-65535"),
    pytest.param({}, {}, {"ports": [8000, 8001, 8000]}, "ports[2]", id="duplicate-port"),
    pytest.param({}, {}, {"ports": [8000]}, "ports", id="too-few-ports"),
    pytest.param({}, {}, {"reserved_ports": [8003]}, "base_port", id="overlaps-reserved"),
    pytest.param({}, {}, {"ports": list(range(8000, 8008)), "reserved_ports": [8005]}, "ports"),
    pytest.param({}, {}, {"engine": "vllm"}, "engine", id="unknown-option"),
]


@pytest.mark.parametrize(("model_over", "host_over", "options", "field"), BAD_INPUT)
def test_bad_input_names_the_field(
    model_over: dict[str, Any], host_over: dict[str, Any], options: dict[str, Any], field: str
) -> None:
    spec = {**model("llama-3.1-8b", 8, "bf16"), **model_over}
    host = {**H200_HGX, **host_over}
    with pytest.raises(PlacementInputError) as raised:
        engine_plan(spec, host, **options)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_tp_over_host_message_is_plain() -> None:
    with pytest.raises(PlacementInputError, match="16 is more than the host's 8 GPUs"):
        engine_plan(model("m", 8, "bf16"), H200_HGX, tensor_parallel_size=16)


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(PlacementInputError, match=r"^model\.params_b: is required"):
        engine_plan({"dtype": "bf16", "context_length": 1}, H200_HGX)
    with pytest.raises(PlacementInputError, match=r"^host: expected a mapping"):
        engine_plan(model("m", 8, "bf16"), [8, 141])


def gpu_facts(profile: str, count: int, mib: int, **extra: Any) -> dict[str, Any]:
    """The shape of the gpu_facts module's onprem_gpu fact, trimmed to what placement reads."""
    gpus = [{"index": i, "name": "NVIDIA GPU", "memory_total_mib": mib} for i in range(count)]
    return {"gpu_count": count, "gpus": gpus, "hardware_profile": profile, **extra}


def test_host_from_gpu_facts() -> None:
    # nvidia-smi's 143771 MiB H200: 150.8 GB, 135.7 GB usable; 70B bf16 (168 GB) -> TP 2.
    h200 = gpu_facts("h200_hgx", 8, 143771, nvswitch_present=True)
    plan = engine_plan(model("llama-3.1-70b", 70, "bf16"), h200)
    assert (plan["tensor_parallel_size"], plan["instances_per_host"]) == (2, 4)
    # A GB200 tray: the rack's 72-GPU domain, 4 GPUs here.
    tray = gpu_facts("gb200_nvl72", 4, 189471)
    assert engine_plan(model("llama-4-scout", 109, "bf16"), tray)["tensor_parallel_size"] == 2
    # No NVSwitch reported: every GPU is its own domain, so only TP 1 is possible.
    pcie = gpu_facts("unknown", 4, 81559)
    assert engine_plan(model("llama-3.1-8b", 8, "bf16"), pcie)["instances_per_host"] == 4
    assert engine_plan(model("llama-3.1-70b", 70, "bf16"), pcie)["fits"] is False


def test_gpu_facts_without_memory_name_the_gpu() -> None:
    facts = gpu_facts("h100_hgx", 2, 81559, nvswitch_present=True)
    facts["gpus"][1]["memory_total_mib"] = None
    with pytest.raises(PlacementInputError, match=r"^host\.gpus\[1\]\.memory_total_mib: "):
        engine_plan(model("m", 8, "bf16"), facts)
    with pytest.raises(PlacementInputError, match=r"^host\.gpu_count: "):
        engine_plan(model("m", 8, "bf16"), {**facts, "gpu_count": 0, "gpus": []})


# One instance over several hosts (max_nodes): the issue's examples, with the models' attention
# heads (Maverick 40, DeepSeek R1 128) and the memory model above.
def test_maverick_bf16_spans_two_gb200_trays_at_tensor_parallel_8() -> None:
    # 960 GB: a tray at TP 4 needs 240 GB per GPU > 167.4; TP 8 over two trays 120 GB fits.
    maverick = model("llama-4-maverick", 400, "bf16", attention_heads=40)
    plan = engine_plan(maverick, GB200_TRAY, max_nodes=18)
    assert plan["fits"], plan["reason"]
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (8, 1)
    assert (plan["nodes_per_instance"], plan["interconnect"]) == (2, "nvlink")
    assert plan["instances"] == [
        {"index": 0, "gpus": [0, 1, 2, 3], "cuda_visible_devices": "0,1,2,3", "port": 8000}
    ]
    assert plan["memory"]["required_per_gpu_gb"] == pytest.approx(120.0)


def test_deepseek_r1_fp8_spans_two_h100_nodes_pipeline_2_by_tensor_8() -> None:
    # 671 GB x 1.2 = 805.2 GB: 100.7 GB per GPU at TP 8 > 72; PP 2 halves it to 50.3.
    r1 = model("deepseek-r1", 671, "fp8", attention_heads=128)
    plan = engine_plan(r1, H100_HGX, max_nodes=8)
    assert plan["fits"], plan["reason"]
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (8, 2)
    assert (plan["nodes_per_instance"], plan["interconnect"]) == (2, "network")
    assert plan["instances_per_host"] == 1 and plan["idle_gpus"] == []
    assert plan["memory"]["required_per_gpu_gb"] == pytest.approx(805.2 / 16)


def test_one_host_is_the_default_and_a_host_that_holds_the_model_never_spans() -> None:
    r1 = model("deepseek-r1", 671, "fp8", attention_heads=128)
    assert not engine_plan(r1, H100_HGX)["fits"]
    assert engine_plan(r1, H200_HGX, max_nodes=8)["nodes_per_instance"] == 1
    assert engine_plan(r1, H200_HGX, max_nodes=8)["pipeline_parallel_size"] == 1


def test_too_few_hosts_names_the_widest_split_tried() -> None:
    r1 = model("deepseek-r1", 671, "bf16", attention_heads=128)  # 1610.4 GB
    plan = engine_plan(r1, H100_HGX, max_nodes=2)
    assert not plan["fits"]
    assert "across up to 2 hosts neither" in plan["reason"]
    assert "tensor_parallel_size 8 x pipeline_parallel_size 2 over 2 hosts" in plan["reason"]


def test_a_spanning_instance_is_one_instance() -> None:
    maverick = model("llama-4-maverick", 400, "bf16", attention_heads=40)
    with pytest.raises(PlacementInputError, match=r"^instances: 2 requested, but one instance"):
        engine_plan(maverick, GB200_TRAY, max_nodes=4, instances=2)
    with pytest.raises(PlacementInputError, match=r"^max_nodes: "):
        engine_plan(maverick, GB200_TRAY, max_nodes=0)
