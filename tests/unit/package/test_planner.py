"""The planner: the design guide's example, hand-computed costs and sizing, edge cases."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from onprem_llm.collection_utils._placement import ModelSpec, PlacementInputError

from onprem_llm.catalog import MODELS, PLATFORMS
from onprem_llm.costs import CostInputs, compute_costs
from onprem_llm.decision import Factors, recommend
from onprem_llm.planner import PlanInputs, make_plan, render_plan
from onprem_llm.sizing import Demand, demand_from_volume, size_platform

# One H200 HGX server with the defaults, by hand:
AMORTISATION = 300_000 / 36  # 8,333.33
AVERAGE_KW = 10.2 * (0.3 + 0.7 * 0.6)  # 7.344 kW
POWER = AVERAGE_KW * 730 * 1.3 * 0.12  # 836.33
OPEX = POWER + 8_000  # 8,836.33
ONPREM = AMORTISATION + OPEX  # 17,169.67


def preset(key: str, dtype: str, context: int = 8192) -> ModelSpec:
    model = MODELS[key]
    return ModelSpec(
        name=key,
        params_b=model.params_b,
        dtype=dtype,
        context_length=context,
        kv_bytes_per_token=model.kv_bytes_per_token,
    )


def test_guide_example_10m_requests_at_one_cent() -> None:
    costs = compute_costs(CostInputs(requests_per_month=10_000_000, api_cost_per_request=0.01))
    assert costs.api_monthly == pytest.approx(100_000)
    assert costs.amortisation_monthly == pytest.approx(AMORTISATION)
    assert costs.power_monthly == pytest.approx(POWER)
    assert costs.onprem_monthly == pytest.approx(ONPREM)
    assert costs.break_even_requests_per_month == pytest.approx(ONPREM / 0.01)  # 1,716,967
    assert costs.months_to_break_even == pytest.approx(300_000 / (100_000 - OPEX))  # 3.29
    assert costs.onprem_cost_per_request == pytest.approx(ONPREM / 10_000_000)
    document = costs.to_dict()
    assert document["api"]["monthly"] == 100_000.0
    assert document["onprem"] == {
        "capex_total": 300_000.0,
        "amortisation_monthly": 8333.33,
        "average_power_kw": 7.344,
        "energy_kwh_monthly": 6969.5,
        "power_monthly": 836.33,
        "cooling_monthly": 0.0,
        "staff_monthly": 8000.0,
        "other_monthly": 0.0,
        "opex_monthly": 8836.33,
        "monthly": 17169.67,
        "cost_per_request": 0.001717,
    }
    assert document["break_even"] == {
        "requests_per_month": 1716967,
        "months": 3.29,
        "monthly_saving": 82830.33,
    }


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
        staff_per_month=12_000,
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
    plan = make_plan(PlanInputs(model=preset("llama-3.1-8b", "bf16"), requests_per_month=0))
    assert plan.demand.concurrency == 0
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


def test_concurrency_by_littles_law() -> None:
    # 10M / (730 x 3600 s) = 3.805 req/s; x 2 at peak x 10 s = 76.1 -> 77 sequences.
    demand = demand_from_volume(10_000_000, 2.0, 10.0)
    assert demand.concurrency == 77
    assert "3.81/s" in demand.basis


SIZING = [
    # Maverick fp8 on H200: TP 4; KV room (126.9 x 4 - 400) / (196608 x 8192 / 1e9) = 66 seqs.
    ("llama-4-maverick", "fp8", "h200_hgx", 60, (4, 66, 1, 4, 1, 1)),
    ("llama-4-maverick", "fp8", "h200_hgx", 100, (4, 66, 2, 8, 1, 1)),
    ("llama-4-maverick", "fp8", "h200_hgx", 200, (4, 66, 4, 16, 2, 2)),
    # 8B bf16 on H200: (126.9 - 16) / 1.0737 = 103 seqs; 1000 -> 10 instances, 8 per node.
    ("llama-3.1-8b", "bf16", "h200_hgx", 1000, (1, 103, 10, 10, 2, 2)),
    # 70B bf16 on H100: TP 4, (72 x 4 - 140) / (327680 x 8192 / 1e9) = 55 seqs.
    ("llama-3.1-70b", "bf16", "h100_hgx", 100, (4, 55, 2, 8, 1, 1)),
    # DeepSeek-V3 bf16 on GB200: 1610.4 GB needs TP 16 (100.7 GB/GPU) = 4 trays of one rack.
    ("deepseek-v3", "bf16", "gb200_nvl72", 10, (16, 256, 1, 16, 4, 1)),
    ("deepseek-v3", "bf16", "gb200_nvl72", 1300, (16, 256, 6, 96, 24, 2)),
]


@pytest.mark.parametrize(("model", "dtype", "platform", "concurrency", "expected"), SIZING)
def test_sizing(
    model: str, dtype: str, platform: str, concurrency: int, expected: tuple[int, ...]
) -> None:
    sizing = size_platform(
        preset(model, dtype),
        PLATFORMS[platform],
        Demand(concurrency, "given"),
        gpu_memory_utilization=0.9,
        max_num_seqs=256,
        min_instances=1,
    )
    assert sizing.fits, sizing.reason
    got = (
        sizing.tensor_parallel_size,
        sizing.sequences_per_instance,
        sizing.instances,
        sizing.gpus,
        sizing.nodes,
        sizing.systems,
    )
    assert got == expected


def test_model_too_big_for_hgx_is_reported_with_the_reason() -> None:
    plan = make_plan(
        PlanInputs(model=preset("deepseek-v3", "bf16"), requests_per_month=1e6, concurrency=10)
    )
    fits = {s.platform.key: s.fits for s in plan.sizings}
    assert fits == {"h200_hgx": False, "gb200_nvl72": True, "h100_hgx": False}
    h200 = next(s for s in plan.sizings if s.platform.key == "h200_hgx")
    assert "201.3 GB per GPU" in (h200.reason or "")
    assert plan.platform is not None and plan.platform.key == "gb200_nvl72"


def test_kv_size_is_needed_for_concurrency() -> None:
    model = ModelSpec(name="custom", params_b=70, dtype="bf16", context_length=8192)
    with pytest.raises(PlacementInputError) as raised:
        make_plan(PlanInputs(model=model, requests_per_month=1e6))
    assert raised.value.field == "kv_bytes_per_token"
    plan = make_plan(PlanInputs(model=model, requests_per_month=1e6, sequences_per_instance=32))
    assert plan.sizings[0].sequences_per_instance == 32


def test_token_pricing_and_its_conflicts() -> None:
    model = preset("llama-3.1-70b", "fp8")
    plan = make_plan(
        PlanInputs(
            model=model,
            requests_per_month=3e6,
            tokens_per_request=1500,
            price_per_million_tokens=4.0,
            platform="h200_hgx",
        )
    )
    assert plan.api_cost_per_request == pytest.approx(0.006)
    assert plan.costs is not None and plan.costs.api_monthly == pytest.approx(18_000)
    with pytest.raises(PlacementInputError, match="price_per_million_tokens"):
        make_plan(PlanInputs(model=model, requests_per_month=1, tokens_per_request=10))
    with pytest.raises(PlacementInputError) as raised:
        make_plan(
            PlanInputs(
                model=model,
                requests_per_month=1,
                api_cost_per_request=0.01,
                tokens_per_request=10,
                price_per_million_tokens=1,
            )
        )
    assert raised.value.field == "api_cost_per_request"


def test_capex_override_needs_a_platform() -> None:
    model = preset("llama-3.1-8b", "bf16")
    with pytest.raises(PlacementInputError) as raised:
        make_plan(PlanInputs(model=model, requests_per_month=1, capex_per_system=1))
    assert raised.value.field == "capex_per_system"
    plan = make_plan(
        PlanInputs(model=model, requests_per_month=1, capex_per_system=360_000, platform="h200_hgx")
    )
    assert plan.costs is not None and plan.costs.amortisation_monthly == pytest.approx(10_000)


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
    plan = make_plan(
        PlanInputs(
            model=preset("llama-4-maverick", "fp8"),
            requests_per_month=5_000_000,
            platform="h200_hgx",
        )
    )
    document = plan.to_dict()
    assert document["workload"]["concurrency"] == 39  # 1.90/s x 2 x 10 s = 38.05
    assert document["cost"]["platform"] == "h200_hgx"
    assert document["cost"]["api"]["monthly"] == 50_000.0
    assert document["cost"]["onprem"]["monthly"] == round(ONPREM, 2)
    assert document["cost"]["parameters"]["capex_per_system"] == 300_000.0
    assert document["recommendation"]["choice"] == "on-prem"
    text = render_plan(plan)
    assert "8x H200 HGX  yes    4         66          1     4      1  1 HGX server" in text
    assert "Break-even volume: 1,716,967 requests/month; months to break even: 7.3" in text


def test_planner_and_filter_share_one_placement_module() -> None:
    from ansible_collections.onprem.llm.plugins.module_utils import _placement as for_filter
    from onprem_llm.collection_utils import _placement as for_planner

    assert Path(for_planner.__file__).resolve() == Path(for_filter.__file__).resolve()
    assert Path(for_planner.__file__).resolve().parent.name == "module_utils"
