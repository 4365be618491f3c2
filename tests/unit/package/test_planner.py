"""The planner: the design guide's example, hand-computed costs and sizing, edge cases."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from onprem_llm.collection_utils._placement import (
    HostSpec,
    ModelSpec,
    PlacementInputError,
    PlacementOptions,
    place,
)

from onprem_llm.catalog import MODELS, PLATFORMS
from onprem_llm.costs import CostInputs, compute_costs, overflow_fraction
from onprem_llm.decision import Factors, recommend
from onprem_llm.planner import NoFitError, PlanInputs, make_plan, render_plan
from onprem_llm.sizing import Architecture, Demand, Workload, demand_from_volume, size_platform

# One H200 HGX server with the defaults, by hand:
AMORTISATION = 300_000 / 36  # 8,333.33
AVERAGE_KW = 10.2 * (0.3 + 0.7 * 0.6)  # 7.344 kW
POWER = AVERAGE_KW * 730 * 1.3 * 0.12  # 836.33
STAFF = 0.5 * 16_000  # half an engineer at least
SUPPORT = 300_000 * 0.08 / 12  # 2,000
COLOCATION = 10.2 * 200  # 2,040
NETWORK = 600.0
OPEX = POWER + STAFF + SUPPORT + COLOCATION + NETWORK  # 13,476.33
ONPREM = AMORTISATION + OPEX  # 21,809.67


def preset(key: str, dtype: str, context: int = 8192) -> ModelSpec:
    model = MODELS[key]
    return ModelSpec(
        name=key,
        params_b=model.params_b,
        dtype=dtype,
        context_length=context,
        kv_bytes_per_token=model.kv_bytes_per_token,
        attention_heads=model.attention_heads,
        kv_heads=model.kv_heads,
    )


def arch(key: str) -> Architecture:
    model = MODELS[key]
    return Architecture(model.active_params_b, model.layers, model.hidden_size)


CHAT = Workload(1000, 500, 2.0, 20.0)


def plan_inputs(key: str, dtype: str, requests: float, **changes: object) -> PlanInputs:
    return PlanInputs(
        model=preset(key, dtype),
        arch=arch(key),
        requests_per_month=requests,
        workload=changes.pop("workload", CHAT),  # type: ignore[arg-type]
        **changes,  # type: ignore[arg-type]
    )


def test_guide_example_10m_requests_at_one_cent_one_server() -> None:
    costs = compute_costs(CostInputs(requests_per_month=10_000_000, api_cost_per_request=0.01))
    assert costs.api_monthly == pytest.approx(100_000)
    assert costs.amortisation_monthly == pytest.approx(AMORTISATION)
    assert costs.power_monthly == pytest.approx(POWER)
    assert costs.staff_monthly == pytest.approx(STAFF)
    assert costs.support_monthly == pytest.approx(SUPPORT)
    assert costs.colocation_monthly == pytest.approx(COLOCATION)
    assert costs.network_monthly == pytest.approx(NETWORK)
    assert costs.onprem_monthly == pytest.approx(ONPREM)
    assert costs.break_even_requests_per_month == pytest.approx(ONPREM / 0.01)
    assert costs.months_to_break_even == pytest.approx(300_000 / (100_000 - OPEX))
    document = costs.to_dict()
    assert document["onprem"]["monthly"] == 21809.67
    assert document["break_even"]["months"] == 3.47


def test_staff_and_support_scale_with_the_fleet() -> None:
    one = compute_costs(CostInputs(requests_per_month=1, systems=1, nodes=1))
    many = compute_costs(CostInputs(requests_per_month=1, systems=40, nodes=40))
    assert one.engineers == 0.5
    assert many.engineers == pytest.approx(40 / 16)
    assert many.staff_monthly == pytest.approx(2.5 * 16_000)
    assert many.support_monthly == pytest.approx(40 * SUPPORT)
    assert many.colocation_monthly == pytest.approx(40 * COLOCATION)
    assert many.network_monthly == pytest.approx(40 * NETWORK)


def test_every_component_adds_up_with_custom_parameters() -> None:
    inputs = CostInputs(
        requests_per_month=2_000_000,
        api_cost_per_request=0.02,
        systems=2,
        capex_per_system=250_000,
        power_kw_per_system=10,
        amortisation_months=48,
        electricity_per_kwh=0.20,
        pue=1.5,
        utilisation=1.0,
        idle_power_fraction=0.0,
        cooling_per_month=500,
        staff_per_month=24_000,
        support_fraction_per_year=0.0,
        colocation_per_kw_month=0.0,
        network_per_node_month=0.0,
        other_opex_per_month=1_500,
    )
    costs = compute_costs(inputs)
    assert costs.amortisation_monthly == pytest.approx(500_000 / 48)  # 10,416.67
    assert costs.energy_kwh_monthly == pytest.approx(2 * 10 * 730 * 1.5)  # 21,900 kWh
    assert costs.power_monthly == pytest.approx(21_900 * 0.20)  # 4,380
    assert costs.opex_monthly == pytest.approx(4_380 + 500 + 12_000 + 1_500)  # 18,380
    assert costs.onprem_monthly == pytest.approx(500_000 / 48 + 18_380)
    assert costs.months_to_break_even == pytest.approx(500_000 / (40_000 - 18_380))  # 23.1


def test_never_breaks_even_when_the_api_costs_less_than_opex() -> None:
    costs = compute_costs(CostInputs(requests_per_month=500_000, api_cost_per_request=0.01))
    assert costs.api_monthly == pytest.approx(5_000)
    assert costs.months_to_break_even is None
    assert costs.to_dict()["break_even"]["months"] == "never"


def test_zero_volume() -> None:
    costs = compute_costs(CostInputs(requests_per_month=0))
    assert costs.api_monthly == 0
    assert costs.onprem_cost_per_request is None
    assert costs.months_to_break_even is None
    assert costs.break_even_requests_per_month == pytest.approx(ONPREM / 0.01)
    plan = make_plan(plan_inputs("llama-3.1-8b", "bf16", 0))
    assert plan.demand.peak_requests_per_s == 0
    assert all(s.instances == 1 for s in plan.sizings)  # min_instances still holds
    assert plan.recommendation.choice == "cloud-api"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"utilisation": 0.0}, "utilisation"),
        ({"utilisation": 1.01}, "utilisation"),
        ({"utilisation": math.nan}, "utilisation"),
        ({"requests_per_month": -1.0}, "requests_per_month"),
        ({"api_cost_per_request": 0.0}, "api_cost_per_request"),
        ({"pue": 0.9}, "pue"),
        ({"amortisation_months": 0}, "amortisation_months"),
        ({"idle_power_fraction": 1.5}, "idle_power_fraction"),
        ({"staff_per_month": -5.0}, "staff_per_month"),
    ],
)
def test_bad_cost_input_names_the_field(changes: dict[str, float], field: str) -> None:
    inputs = dataclasses.replace(CostInputs(requests_per_month=1), **changes)
    with pytest.raises(PlacementInputError) as raised:
        compute_costs(inputs)
    assert raised.value.field == field


def test_utilisation_of_one_is_allowed() -> None:
    assert compute_costs(CostInputs(requests_per_month=1, utilisation=1.0)).average_power_kw == (
        pytest.approx(10.2)
    )


def test_demand_from_volume() -> None:
    # 10M / (730 x 3600 s) = 3.805 req/s; x 2 at peak = 7.61/s.
    demand = demand_from_volume(10_000_000, 2.0)
    assert demand.peak_requests_per_s == pytest.approx(10_000_000 / 2_628_000 * 2)
    assert "3.81/s" in demand.basis


def _size(key: str, dtype: str, platform: str, rate: float, workload: Workload = CHAT):
    return size_platform(
        preset(key, dtype),
        arch(key),
        PLATFORMS[platform],
        Demand(rate, None, "given"),
        workload,
        gpu_memory_utilization=0.9,
        max_num_seqs=256,
        min_instances=1,
    )


def test_tensor_parallel_for_dense_and_gqa_matches_vllm_recipes() -> None:
    assert _size("llama-4-maverick", "fp8", "h200_hgx", 1).tensor_parallel_size == 4
    assert _size("llama-3.1-70b", "bf16", "h100_hgx", 1).tensor_parallel_size == 4
    assert _size("llama-3.1-8b", "bf16", "h200_hgx", 1).tensor_parallel_size == 1
    assert _size("llama-3.1-405b", "fp8", "h100_hgx", 1).tensor_parallel_size == 8


def test_mla_cache_is_replicated_on_every_rank() -> None:
    # DeepSeek FP8 on 8x H200: (126.9 - 671 / 8) GB free per GPU over a whole 8,192-token
    # latent cache of 0.5757 GB = 74 requests, not 8 x that.
    full = Workload(4096, 4096, 30.0, 1.0)
    sizing = _size("deepseek-r1", "fp8", "h200_hgx", 1, full)
    assert sizing.throughput is not None and sizing.throughput.kv_sequences == 74
    assert sizing.memory is not None and sizing.memory["kv_replicas"] == 8


def test_gqa_cache_is_replicated_beyond_its_kv_heads() -> None:
    model = preset("llama-3.1-405b", "bf16")
    # 8 KV heads: at TP 16 each pair of ranks holds the same heads.
    assert model.kv_shards(16) == 8 and model.kv_shards(4) == 4


def test_tp_must_divide_the_attention_heads() -> None:
    scout = preset("llama-4-scout", "bf16")
    assert scout.tp_allowed(8) and not scout.tp_allowed(16)
    with pytest.raises(PlacementInputError, match="40 attention heads"):
        place(scout, HostSpec(72, 186, 72), PlacementOptions(tensor_parallel_size=16))


def test_deepseek_fp8_on_h100_spans_two_nodes_with_pipeline_parallelism() -> None:
    sizing = _size("deepseek-r1", "fp8", "h100_hgx", 1)
    assert sizing.fits, sizing.reason
    assert (sizing.tensor_parallel_size, sizing.pipeline_parallel_size) == (8, 2)
    assert sizing.layout is not None and "InfiniBand" in sizing.layout.interconnect
    assert sizing.systems == sizing.nodes == 2


def test_fleet_grows_with_tokens_per_request() -> None:
    short = _size("llama-3.1-70b", "fp8", "h200_hgx", 20, Workload(500, 100, 2.0, 20.0))
    long = _size("llama-3.1-70b", "fp8", "h200_hgx", 20, Workload(8000, 2000, 5.0, 20.0))
    assert long.instances > short.instances
    assert long.gpus >= 4 * short.gpus


def test_slo_caps_the_batch() -> None:
    loose = _size("llama-3.1-70b", "fp8", "h200_hgx", 10, Workload(1000, 500, 5.0, 5.0))
    strict = _size("llama-3.1-70b", "fp8", "h200_hgx", 10, Workload(1000, 500, 5.0, 40.0))
    assert loose.throughput is not None and strict.throughput is not None
    assert strict.throughput.batch < loose.throughput.batch
    assert strict.throughput.user_tokens_per_s >= 40
    assert strict.instances >= loose.instances


def test_nothing_fits_raises_with_every_reason() -> None:
    model = ModelSpec("huge", 9000, "bf16", 8192, kv_bytes_per_token=1000)
    inputs = PlanInputs(model, Architecture(9000, 200, 32768), 1e6, CHAT)
    with pytest.raises(NoFitError) as raised:
        make_plan(inputs)
    text = str(raised.value)
    for label in ("H200", "H100", "B200", "GB200"):
        assert label in text


def test_model_too_big_for_one_hgx_node_uses_the_rack_or_pipeline() -> None:
    plan = make_plan(plan_inputs("deepseek-v3", "bf16", 1e6))
    by_key = {s.platform.key: s for s in plan.sizings}
    assert by_key["gb200_nvl72"].tensor_parallel_size == 16
    assert by_key["h200_hgx"].pipeline_parallel_size == 2


def test_api_prices_by_tokens_and_flat() -> None:
    plan = make_plan(plan_inputs("llama-3.1-70b", "fp8", 3e6, platform="h200_hgx"))
    assert plan.api_cost_per_request == pytest.approx((1000 * 1.25 + 500 * 10) / 1e6)
    plan = make_plan(
        plan_inputs("llama-3.1-70b", "fp8", 3e6, api="claude-sonnet-4.5", api_output_price=20.0)
    )
    assert plan.api_cost_per_request == pytest.approx((1000 * 3 + 500 * 20) / 1e6)
    with pytest.raises(PlacementInputError) as raised:
        make_plan(
            plan_inputs("llama-3.1-70b", "fp8", 1, api_cost_per_request=0.01, api_input_price=1.0)
        )
    assert raised.value.field == "api_input_price"


def test_hybrid_and_break_even_curve() -> None:
    plan = make_plan(
        plan_inputs("llama-3.1-70b", "fp8", 1e7, api_cost_per_request=0.01, platform="h200_hgx")
    )
    assert 0 < plan.hybrid_cloud_share < 0.5
    assert plan.break_even_points
    first = plan.break_even_points[0]
    assert 1e5 < first < 1e7
    for point in plan.curve:
        assert point.cloud == pytest.approx(point.requests_per_month * 0.01)
    assert overflow_fraction(2.0, 1.0) == pytest.approx(0.25)
    assert overflow_fraction(4.0, 1.0) == pytest.approx(0.5625)
    assert overflow_fraction(2.0, 2.0) == 0


def test_capex_override_needs_a_platform() -> None:
    with pytest.raises(PlacementInputError) as raised:
        make_plan(plan_inputs("llama-3.1-8b", "bf16", 1, capex_per_system=1))
    assert raised.value.field == "capex_per_system"
    plan = make_plan(
        plan_inputs("llama-3.1-8b", "bf16", 1, capex_per_system=360_000, platform="h200_hgx")
    )
    assert plan.costs.amortisation_monthly == pytest.approx(10_000)


def _costs(requests: float):  # one H200 server, the defaults
    return compute_costs(CostInputs(requests_per_month=requests))


@pytest.mark.parametrize(
    ("factors", "requests", "choice", "decisive"),
    [
        (Factors(), 10_000_000, "on-prem", "at or above break-even"),
        (Factors(peak_to_average=5), 10_000_000, "hybrid", "peaky"),
        (Factors(), 500_000, "cloud-api", "below break-even"),
        (Factors(data_sovereignty="partial"), 500_000, "hybrid", "stay on premises"),
        (Factors(latency_sensitive=True), 500_000, "hybrid", "stay on premises"),
        (Factors(fine_tuning=True), 500_000, "hybrid", "stay on premises"),
        (Factors(data_sovereignty="strict"), 100, "on-prem", "sovereignty"),
        (Factors(ops_capacity="none"), 10_000_000, "cloud-api", "operations capacity"),
        (Factors(data_sovereignty="strict", ops_capacity="none"), 1, "on-prem", "contract"),
    ],
)
def test_recommendation(factors: Factors, requests: float, choice: str, decisive: str) -> None:
    recommendation = recommend(factors, requests, _costs(requests))
    assert recommendation.choice == choice
    assert recommendation.reasons[0].startswith("decision: ")
    assert decisive in recommendation.reasons[0]
    topics = [reason.split(":")[0] for reason in recommendation.reasons[1:]]
    assert topics == [
        "sustained volume", "data sovereignty", "operations capacity", "latency",
        "workload variability", "fine-tuning",
    ]  # fmt: skip


def test_bad_factors_are_rejected() -> None:
    with pytest.raises(PlacementInputError, match="data_sovereignty"):
        recommend(Factors(data_sovereignty="some"), 1, None)
    with pytest.raises(PlacementInputError, match="peak_to_average"):
        recommend(Factors(peak_to_average=0.5), 1, None)


def test_plan_document_and_table_for_maverick_fp8() -> None:
    plan = make_plan(plan_inputs("llama-4-maverick", "fp8", 5_000_000, platform="h200_hgx"))
    document = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    assert document["cost"]["platform"] == "h200_hgx"
    h200 = document["sizing"][0]
    assert h200["tensor_parallel_size"] == 4 and h200["throughput"]["batch"] >= 1
    text = render_plan(plan)
    assert "8x H200 HGX  yes   4x1" in text
    assert "Recommendation:" in text


def test_planner_and_filter_share_one_placement_module() -> None:
    from ansible_collections.onprem.llm.plugins.module_utils import _placement as for_filter
    from onprem_llm.collection_utils import _placement as for_planner

    assert Path(for_planner.__file__).resolve() == Path(for_filter.__file__).resolve()
    assert Path(for_planner.__file__).resolve().parent.name == "module_utils"
