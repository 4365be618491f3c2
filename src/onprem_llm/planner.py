"""`onprem-llm plan`: sizing on every platform, cost and break-even, and a recommendation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from onprem_llm.catalog import PLATFORMS, Platform
from onprem_llm.collection_utils._placement import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    ModelSpec,
    PlacementInputError,
    fraction,
    positive_int,
    positive_number,
)
from onprem_llm.costs import CostInputs, Costs, compute_costs
from onprem_llm.decision import Factors, Recommendation, recommend
from onprem_llm.sizing import Demand, Sizing, demand_from_volume, size_platform
from onprem_llm.tables import render_table

DEFAULT_API_COST_PER_REQUEST = 0.01  # the design guide's example


@dataclass(frozen=True)
class PlanInputs:
    """Everything `plan` takes; None means "use the default or derive it"."""

    model: ModelSpec
    requests_per_month: float
    concurrency: int | None = None
    peak_to_average: float = 2.0
    seconds_per_request: float = 10.0
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_num_seqs: int = 256
    sequences_per_instance: int | None = None
    min_instances: int = 1
    platform: str = "auto"  # the platform costed; auto = the cheapest that holds the model
    api_cost_per_request: float | None = None
    tokens_per_request: float | None = None
    price_per_million_tokens: float | None = None
    capex_per_system: float | None = None  # None: the platform's catalog figure
    power_kw_per_system: float | None = None
    costs: CostInputs = field(default_factory=lambda: CostInputs(requests_per_month=0))
    factors: Factors = field(default_factory=Factors)


@dataclass(frozen=True)
class Plan:
    inputs: PlanInputs
    api_cost_per_request: float
    api_price_basis: str
    demand: Demand
    sizings: tuple[Sizing, ...]
    costs_by_platform: dict[str, Costs]
    platform: Platform | None
    recommendation: Recommendation

    @property
    def costs(self) -> Costs | None:
        return self.costs_by_platform.get(self.platform.key) if self.platform else None

    def to_dict(self) -> dict[str, Any]:
        model = self.inputs.model
        chosen = self.costs
        return {
            "model": dataclasses.asdict(model),
            "workload": {
                "requests_per_month": self.inputs.requests_per_month,
                "concurrency": self.demand.concurrency,
                "concurrency_basis": self.demand.basis,
                "api_cost_per_request": self.api_cost_per_request,
                "api_price_basis": self.api_price_basis,
            },
            "sizing": [
                {
                    **sizing.to_dict(),
                    "onprem_monthly": (
                        round(self.costs_by_platform[sizing.platform.key].onprem_monthly, 2)
                        if sizing.platform.key in self.costs_by_platform
                        else None
                    ),
                }
                for sizing in self.sizings
            ],
            "cost": (
                None
                if chosen is None or self.platform is None
                else {
                    "platform": self.platform.key,
                    "parameters": self.cost_parameters(self.platform),
                    **chosen.to_dict(),
                }
            ),
            "recommendation": self.recommendation.to_dict(),
        }

    def cost_parameters(self, platform: Platform) -> dict[str, Any]:
        params = dataclasses.asdict(_cost_inputs(self.inputs, platform, self.sizing(platform)))
        params["api_cost_per_request"] = self.api_cost_per_request
        return params

    def sizing(self, platform: Platform) -> Sizing:
        return next(s for s in self.sizings if s.platform.key == platform.key)


def _api_cost_per_request(inputs: PlanInputs) -> tuple[float, str]:
    by_tokens = inputs.tokens_per_request is not None or inputs.price_per_million_tokens is not None
    if by_tokens:
        if inputs.api_cost_per_request is not None:
            raise PlacementInputError(
                "api_cost_per_request",
                "give either a cost per request or tokens_per_request with"
                " price_per_million_tokens, not both",
            )
        if inputs.tokens_per_request is None:
            raise PlacementInputError("tokens_per_request", "is needed to price the API by tokens")
        if inputs.price_per_million_tokens is None:
            raise PlacementInputError(
                "price_per_million_tokens", "is needed to price the API by tokens"
            )
        tokens = positive_number(inputs.tokens_per_request, "tokens_per_request")
        price = positive_number(inputs.price_per_million_tokens, "price_per_million_tokens")
        return tokens * price / 1e6, f"{tokens:g} tokens x ${price:g} per 1M tokens"
    if inputs.api_cost_per_request is None:
        return DEFAULT_API_COST_PER_REQUEST, "default cost per request"
    return (
        positive_number(inputs.api_cost_per_request, "api_cost_per_request"),
        "cost per request",
    )


def _cost_inputs(inputs: PlanInputs, platform: Platform, sizing: Sizing) -> CostInputs:
    return dataclasses.replace(
        inputs.costs,
        requests_per_month=inputs.requests_per_month,
        systems=sizing.systems,
        capex_per_system=(
            platform.capex_per_system
            if inputs.capex_per_system is None
            else inputs.capex_per_system
        ),
        power_kw_per_system=(
            platform.power_kw_per_system
            if inputs.power_kw_per_system is None
            else inputs.power_kw_per_system
        ),
    )


def _validate(inputs: PlanInputs) -> None:
    if not inputs.requests_per_month >= 0:
        raise PlacementInputError(
            "requests_per_month", f"must be 0 or more, got {inputs.requests_per_month:g}"
        )
    if inputs.concurrency is not None and inputs.concurrency < 0:
        raise PlacementInputError("concurrency", f"must be 0 or more, got {inputs.concurrency}")
    positive_number(inputs.seconds_per_request, "seconds_per_request")
    fraction(inputs.gpu_memory_utilization, "gpu_memory_utilization")
    positive_int(inputs.max_num_seqs, "max_num_seqs")
    positive_int(inputs.min_instances, "min_instances")
    if inputs.sequences_per_instance is not None:
        positive_int(inputs.sequences_per_instance, "sequences_per_instance")
    if inputs.platform != "auto" and inputs.platform not in PLATFORMS:
        known = ", ".join(["auto", *PLATFORMS])
        raise PlacementInputError("platform", f"unknown {inputs.platform!r} (known: {known})")
    overridden = inputs.capex_per_system is not None or inputs.power_kw_per_system is not None
    if overridden and inputs.platform == "auto":
        name = "capex_per_system" if inputs.capex_per_system is not None else "power_kw_per_system"
        raise PlacementInputError(name, "applies to one platform: choose it with --platform")
    inputs.factors.validate()


def make_plan(inputs: PlanInputs) -> Plan:
    """Size every platform with the engine placement code, cost them, and recommend."""
    _validate(inputs)
    api_cost, basis = _api_cost_per_request(inputs)
    cost_inputs = dataclasses.replace(
        inputs.costs, api_cost_per_request=api_cost, requests_per_month=inputs.requests_per_month
    )
    cost_inputs.validate()  # even when no platform holds the model
    inputs = dataclasses.replace(inputs, costs=cost_inputs)
    if inputs.concurrency is not None:
        demand = Demand(inputs.concurrency, "given")
    else:
        demand = demand_from_volume(
            inputs.requests_per_month, inputs.factors.peak_to_average, inputs.seconds_per_request
        )
    sizings = tuple(
        size_platform(
            inputs.model,
            platform,
            demand,
            gpu_memory_utilization=inputs.gpu_memory_utilization,
            max_num_seqs=inputs.max_num_seqs,
            min_instances=inputs.min_instances,
            sequences_per_instance=inputs.sequences_per_instance,
        )
        for platform in PLATFORMS.values()
    )
    costable = [
        sizing
        for sizing in sizings
        if sizing.fits and inputs.platform in ("auto", sizing.platform.key)
    ]
    costs = {
        sizing.platform.key: compute_costs(_cost_inputs(inputs, sizing.platform, sizing))
        for sizing in costable
    }
    platform = None
    if costs:
        key = min(costs, key=lambda k: costs[k].onprem_monthly)
        platform = PLATFORMS[key]
    chosen = costs.get(platform.key) if platform else None
    recommendation = recommend(inputs.factors, inputs.requests_per_month, chosen)
    return Plan(
        inputs=inputs,
        api_cost_per_request=api_cost,
        api_price_basis=basis,
        demand=demand,
        sizings=sizings,
        costs_by_platform=costs,
        platform=platform,
        recommendation=recommendation,
    )


def _money(value: float) -> str:
    return f"{value:,.2f}"


def render_plan(plan: Plan) -> str:
    model = plan.inputs.model
    lines = [
        f"Model:   {model.name}, {model.params_b:g}B parameters in {model.weight_format},"
        f" context {model.context_length:,} tokens",
        f"Demand:  {plan.demand.concurrency:,} concurrent sequences ({plan.demand.basis})",
        "",
        "Sizing (engine placement per node as the engine_plan filter computes it)",
    ]
    rows = []
    for sizing in plan.sizings:
        cost = plan.costs_by_platform.get(sizing.platform.key)
        if not sizing.fits:
            rows.append([sizing.platform.label, "no", "-", "-", "-", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                sizing.platform.label,
                "yes",
                sizing.tensor_parallel_size,
                sizing.sequences_per_instance,
                sizing.instances,
                sizing.gpus,
                sizing.nodes,
                f"{sizing.systems} {sizing.platform.system_label}",
                _money(cost.onprem_monthly) if cost else "-",
            ]
        )
    headers = ["platform", "fits", "TP", "seqs/inst", "instances", "GPUs", "nodes", "systems"]
    lines.append(render_table([*headers, "on-prem $/month"], rows, right={2, 3, 4, 5, 6, 8}))
    for sizing in plan.sizings:
        if not sizing.fits:
            lines.append(f"  {sizing.platform.label}: {sizing.reason}")
    lines.append("")
    costs = plan.costs
    if costs is None or plan.platform is None:
        lines.append("Cost: no platform holds the model, so on-prem is not costed.")
    else:
        params = plan.cost_parameters(plan.platform)
        sizing = plan.sizing(plan.platform)
        lines.append(
            f"Cost on {plan.platform.label} ({sizing.systems} {plan.platform.system_label})"
        )
        rows = [
            [
                f"API: {plan.inputs.requests_per_month:,.0f} requests x"
                f" ${plan.api_cost_per_request:.4f} ({plan.api_price_basis})",
                _money(costs.api_monthly),
            ],
            [
                f"capex ${costs.capex_total:,.0f} / {params['amortisation_months']} months",
                _money(costs.amortisation_monthly),
            ],
            [
                f"power {costs.average_power_kw:.2f} kW average x 730 h x PUE {params['pue']:g}"
                f" x ${params['electricity_per_kwh']:g}/kWh",
                _money(costs.power_monthly),
            ],
            ["cooling beyond PUE", _money(costs.cooling_monthly)],
            ["staff", _money(costs.staff_monthly)],
            ["other opex (support, colocation)", _money(costs.other_monthly)],
            ["on-prem total", _money(costs.onprem_monthly)],
        ]
        lines.append(render_table(["component", "USD/month"], rows, right={1}))
        months = (
            "never (the API costs less than on-prem opex)"
            if costs.months_to_break_even is None
            else f"{costs.months_to_break_even:.1f}"
        )
        lines.append(
            f"Break-even volume: {costs.break_even_requests_per_month:,.0f} requests/month;"
            f" months to break even: {months}"
        )
    lines += ["", f"Recommendation: {plan.recommendation.choice}"]
    lines += [f"  - {reason}" for reason in plan.recommendation.reasons]
    return "\n".join(lines)
