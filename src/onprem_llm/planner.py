"""`onprem-llm plan`: sizing on every platform, cost, hybrid, break-even curve, recommendation."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from onprem_llm.catalog import API_PRICES, DEFAULT_API, PLATFORMS, Platform
from onprem_llm.collection_utils._placement import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    ModelSpec,
    PlacementInputError,
)
from onprem_llm.costs import CostInputs, Costs, compute_costs, overflow_fraction
from onprem_llm.decision import Factors, Recommendation, recommend
from onprem_llm.sizing import (
    SECONDS_PER_MONTH,
    Architecture,
    Demand,
    Efficiency,
    Sizing,
    Workload,
    _nodes_and_systems,
    demand_from_volume,
    size_platform,
)
from onprem_llm.tables import render_table


class NoFitError(Exception):
    """No platform can serve the model under the workload; the message says why for each."""


@dataclass(frozen=True)
class PlanInputs:
    """Everything `plan` takes; None means "use the default or derive it"."""

    model: ModelSpec
    arch: Architecture
    requests_per_month: float
    workload: Workload
    concurrency: int | None = None
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_num_seqs: int = 256
    min_instances: int = 1
    platform: str = "auto"  # the platform costed; auto = the cheapest that serves the workload
    api: str = DEFAULT_API
    api_input_price: float | None = None  # USD per million tokens; None: the preset's
    api_output_price: float | None = None
    api_cost_per_request: float | None = None  # a flat price instead of tokens
    capex_per_system: float | None = None  # None: the platform's catalog figure
    power_kw_per_system: float | None = None
    costs: CostInputs = field(default_factory=lambda: CostInputs(requests_per_month=0))
    factors: Factors = field(default_factory=Factors)
    efficiency: Efficiency = field(default_factory=Efficiency)


@dataclass(frozen=True)
class CurvePoint:
    requests_per_month: float
    cloud: float
    onprem: float
    hybrid: float


@dataclass(frozen=True)
class Plan:
    inputs: PlanInputs
    api_cost_per_request: float
    api_price_basis: str
    demand: Demand
    sizings: tuple[Sizing, ...]
    costs_by_platform: dict[str, Costs]
    platform: Platform
    hybrid_monthly: float
    hybrid_cloud_share: float
    curve: tuple[CurvePoint, ...]
    break_even_points: tuple[float, ...]
    recommendation: Recommendation

    @property
    def costs(self) -> Costs:
        return self.costs_by_platform[self.platform.key]

    def sizing(self, platform: Platform) -> Sizing:
        return next(s for s in self.sizings if s.platform.key == platform.key)

    def cost_parameters(self, platform: Platform) -> dict[str, Any]:
        params = dataclasses.asdict(_cost_inputs(self.inputs, platform, self.sizing(platform)))
        params["api_cost_per_request"] = self.api_cost_per_request
        return params

    def to_dict(self) -> dict[str, Any]:
        model = self.inputs.model
        return {
            "model": {**dataclasses.asdict(model), **dataclasses.asdict(self.inputs.arch)},
            "workload": {
                "requests_per_month": self.inputs.requests_per_month,
                "peak_requests_per_s": round(self.demand.peak_requests_per_s, 4),
                "demand_basis": self.demand.basis,
                **dataclasses.asdict(self.inputs.workload),
                "api_cost_per_request": round(self.api_cost_per_request, 6),
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
            "cost": {
                "platform": self.platform.key,
                "parameters": self.cost_parameters(self.platform),
                **self.costs.to_dict(),
                "hybrid": {
                    "monthly": round(self.hybrid_monthly, 2),
                    "cloud_share_of_requests": round(self.hybrid_cloud_share, 4),
                },
            },
            "break_even_curve": {
                "break_even_requests_per_month": [round(v) for v in self.break_even_points],
                "points": [
                    {
                        "requests_per_month": round(p.requests_per_month),
                        "cloud": round(p.cloud, 2),
                        "onprem": round(p.onprem, 2),
                        "hybrid": round(p.hybrid, 2),
                    }
                    for p in self.curve
                ],
            },
            "recommendation": self.recommendation.to_dict(),
        }


def api_price(inputs: PlanInputs) -> tuple[float, str]:
    """Cost of one request on the API, and how it was priced."""
    tokens_given = inputs.api_input_price is not None or inputs.api_output_price is not None
    if inputs.api_cost_per_request is not None:
        if tokens_given:
            flag = "api_input_price" if inputs.api_input_price is not None else "api_output_price"
            raise PlacementInputError(
                flag, "give per-token prices or --api-cost-per-request, not both"
            )
        return inputs.api_cost_per_request, "flat cost per request"
    preset = API_PRICES[inputs.api]
    given_in, given_out = inputs.api_input_price, inputs.api_output_price
    price_in = preset.input_per_million if given_in is None else given_in
    price_out = preset.output_per_million if given_out is None else given_out
    load = inputs.workload
    cost = (load.prompt_tokens * price_in + load.completion_tokens * price_out) / 1e6
    basis = (
        f"{preset.label} list price of {preset.as_of}"
        + (" (overridden)" if tokens_given else "")
        + f": {load.prompt_tokens:,} in x ${price_in:g} + {load.completion_tokens:,} out"
        f" x ${price_out:g} per 1M tokens"
    )
    if cost <= 0:
        raise PlacementInputError("api_input_price", "the API prices make a request cost $0")
    return cost, basis


def _cost_inputs(inputs: PlanInputs, platform: Platform, sizing: Sizing) -> CostInputs:
    return dataclasses.replace(
        inputs.costs,
        requests_per_month=inputs.requests_per_month,
        systems=max(1, sizing.systems),
        nodes=max(1, sizing.nodes),
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
    if inputs.platform != "auto" and inputs.platform not in PLATFORMS:
        known = ", ".join(["auto", *PLATFORMS])
        raise PlacementInputError("platform", f"unknown {inputs.platform!r} (known: {known})")
    if inputs.api not in API_PRICES:
        raise PlacementInputError("api", f"unknown {inputs.api!r} (known: {', '.join(API_PRICES)})")
    overridden = inputs.capex_per_system is not None or inputs.power_kw_per_system is not None
    if overridden and inputs.platform == "auto":
        name = "capex_per_system" if inputs.capex_per_system is not None else "power_kw_per_system"
        raise PlacementInputError(name, "applies to one platform: choose it with --platform")
    inputs.factors.validate()


def _fleet_costs(
    inputs: PlanInputs, platform: Platform, sizing: Sizing, requests: float, peak: float
) -> tuple[Costs, float]:
    """On-prem cost of the fleet sized for `requests` a month at `peak` x the average rate, and
    that fleet's capacity in multiples of the average rate."""
    assert sizing.throughput is not None and sizing.layout is not None
    rate = sizing.throughput.requests_per_s
    average = requests / SECONDS_PER_MONTH
    instances = max(inputs.min_instances, math.ceil(average * peak / rate - 1e-9))
    nodes, systems = _nodes_and_systems(platform, sizing.layout, instances)
    fleet = dataclasses.replace(sizing, instances=instances, nodes=nodes, systems=systems)
    costs = compute_costs(
        dataclasses.replace(_cost_inputs(inputs, platform, fleet), requests_per_month=requests)
    )
    capacity = instances * rate / average if average > 0 else math.inf
    return costs, capacity


def _hybrid(
    inputs: PlanInputs, platform: Platform, sizing: Sizing, requests: float, price: float
) -> tuple[float, float]:
    """On-prem sized for the average load, the API for what rises above it."""
    if requests <= 0:
        costs, _unused = _fleet_costs(inputs, platform, sizing, 0.0, 1.0)
        return costs.onprem_monthly, 0.0
    costs, capacity = _fleet_costs(inputs, platform, sizing, requests, 1.0)
    share = overflow_fraction(inputs.factors.peak_to_average, capacity)
    return costs.onprem_monthly + requests * share * price, share


def _curve(
    inputs: PlanInputs, platform: Platform, sizing: Sizing, price: float
) -> tuple[tuple[CurvePoint, ...], tuple[float, ...]]:
    """Monthly cost against volume from 1% to 10x the input (at least 1M to 100M a month)."""
    top = max(inputs.requests_per_month * 10, 1e8)
    bottom = min(max(inputs.requests_per_month / 100, 1e4), 1e6)
    steps = 120
    points = []
    peak = inputs.factors.peak_to_average
    for i in range(steps + 1):
        volume = bottom * (top / bottom) ** (i / steps)
        onprem, _unused = _fleet_costs(inputs, platform, sizing, volume, peak)
        hybrid, _unused = _hybrid(inputs, platform, sizing, volume, price)
        points.append(CurvePoint(volume, volume * price, onprem.onprem_monthly, hybrid))
    crossings = []
    for before, after in itertools.pairwise(points):
        if (before.cloud < before.onprem) and (after.cloud >= after.onprem):
            crossings.append(_crossing(inputs, platform, sizing, price, before, after))
    return tuple(points), tuple(crossings)


def _crossing(
    inputs: PlanInputs,
    platform: Platform,
    sizing: Sizing,
    price: float,
    low: CurvePoint,
    high: CurvePoint,
) -> float:
    """Bisect the volume where the API starts to cost at least as much as on-prem."""
    a, b = low.requests_per_month, high.requests_per_month
    peak = inputs.factors.peak_to_average
    for _iteration in range(40):
        middle = (a + b) / 2
        onprem, _unused = _fleet_costs(inputs, platform, sizing, middle, peak)
        if middle * price >= onprem.onprem_monthly:
            b = middle
        else:
            a = middle
    return b


def make_plan(inputs: PlanInputs) -> Plan:
    """Size every platform, cost those that serve the workload, and recommend.
    Raises NoFitError when no platform (or not the one asked for) can serve it."""
    _validate(inputs)
    price, basis = api_price(inputs)
    cost_inputs = dataclasses.replace(
        inputs.costs, api_cost_per_request=price, requests_per_month=inputs.requests_per_month
    )
    cost_inputs.validate()
    inputs = dataclasses.replace(inputs, costs=cost_inputs)
    demand = demand_from_volume(
        inputs.requests_per_month, inputs.factors.peak_to_average, inputs.concurrency
    )
    sizings = tuple(
        size_platform(
            inputs.model,
            inputs.arch,
            platform,
            demand,
            inputs.workload,
            gpu_memory_utilization=inputs.gpu_memory_utilization,
            max_num_seqs=inputs.max_num_seqs,
            min_instances=inputs.min_instances,
            efficiency=inputs.efficiency,
        )
        for platform in PLATFORMS.values()
    )
    costable = [s for s in sizings if s.fits and inputs.platform in ("auto", s.platform.key)]
    if not costable:
        asked = [s for s in sizings if inputs.platform in ("auto", s.platform.key)]
        reasons = "; ".join(f"{s.platform.label}: {s.reason}" for s in asked)
        raise NoFitError(f"{inputs.model.name} cannot be served as asked. {reasons}")
    costs = {s.platform.key: compute_costs(_cost_inputs(inputs, s.platform, s)) for s in costable}
    key = min(costs, key=lambda k: costs[k].onprem_monthly)
    platform = PLATFORMS[key]
    sizing = next(s for s in sizings if s.platform.key == key)
    hybrid, share = _hybrid(inputs, platform, sizing, inputs.requests_per_month, price)
    curve, crossings = _curve(inputs, platform, sizing, price)
    recommendation = recommend(
        inputs.factors, inputs.requests_per_month, costs[key], hybrid_monthly=hybrid
    )
    return Plan(
        inputs=inputs,
        api_cost_per_request=price,
        api_price_basis=basis,
        demand=demand,
        sizings=sizings,
        costs_by_platform=costs,
        platform=platform,
        hybrid_monthly=hybrid,
        hybrid_cloud_share=share,
        curve=curve,
        break_even_points=crossings,
        recommendation=recommendation,
    )


def _money(value: float) -> str:
    return f"{value:,.2f}"


def render_plan(plan: Plan) -> str:
    model, arch, load = plan.inputs.model, plan.inputs.arch, plan.inputs.workload
    active = f" ({arch.active_params_b:g}B active)" if arch.active_params_b < model.params_b else ""
    lines = [
        f"Model:   {model.name}, {model.params_b:g}B parameters{active} in {model.weight_format},"
        f" context {model.context_length:,} tokens",
        f"Request: {load.prompt_tokens:,} prompt + {load.completion_tokens:,} completion tokens;"
        f" SLO TTFT {load.ttft_slo_s:g} s, {load.tokens_per_s_slo:g} output tokens/s per user",
        f"Demand:  {plan.demand.basis}",
        "",
        "Sizing (placement per node as the engine_plan filter computes it; throughput model in"
        " docs/planner.md)",
    ]
    rows: list[list[object]] = []
    for s in plan.sizings:
        cost = plan.costs_by_platform.get(s.platform.key)
        if not s.fits or s.layout is None or s.throughput is None:
            rows.append([s.platform.label, "no", *["-"] * 8])
            continue
        point = s.throughput
        rows.append(
            [
                s.platform.label,
                "yes",
                f"{s.layout.tp}x{s.layout.pp}",
                f"{point.batch} ({point.batch_limit})",
                f"{point.requests_per_s * load.completion_tokens:,.0f}",
                f"{point.ttft_s:.2f}",
                s.instances,
                s.gpus,
                f"{s.systems} {s.platform.system_label}",
                _money(cost.onprem_monthly) if cost else "-",
            ]
        )
    headers = ["platform", "fits", "TPxPP", "batch (limit)", "out tok/s/inst", "TTFT s"]
    headers += ["instances", "GPUs", "systems", "on-prem $/month"]
    lines.append(render_table(headers, rows, right={4, 5, 6, 7, 9}))
    for s in plan.sizings:
        if not s.fits:
            lines.append(f"  {s.platform.label}: {s.reason}")
        elif s.layout is not None and s.layout.nodes_per_instance > 1:
            lines.append(f"  {s.platform.label}: {s.layout.interconnect}")
    lines.append("")
    costs, platform = plan.costs, plan.platform
    params = plan.cost_parameters(platform)
    sizing = plan.sizing(platform)
    lines.append(
        f"Cost on {platform.label} ({sizing.systems} {platform.system_label},"
        f" {sizing.nodes} nodes, {sizing.gpus} GPUs)"
    )
    rows = [
        [
            f"API: {plan.inputs.requests_per_month:,.0f} requests x"
            f" ${plan.api_cost_per_request:.5f} ({plan.api_price_basis})",
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
        [f"staff: {costs.engineers:.2f} engineers", _money(costs.staff_monthly)],
        [
            f"support: {params['support_fraction_per_year']:g} of capex a year",
            _money(costs.support_monthly),
        ],
        [
            f"colocation: ${params['colocation_per_kw_month']:g}/kW/month",
            _money(costs.colocation_monthly),
        ],
        [
            f"network: ${params['network_per_node_month']:g}/node/month",
            _money(costs.network_monthly),
        ],
        ["other opex", _money(costs.other_monthly)],
        ["on-prem total", _money(costs.onprem_monthly)],
        [
            f"hybrid: on-prem for the average load, {plan.hybrid_cloud_share:.1%} of requests"
            " (the peaks) on the API",
            _money(plan.hybrid_monthly),
        ],
    ]
    lines.append(render_table(["component", "USD/month"], rows, right={1}))
    months = (
        "never (the API costs less than on-prem opex)"
        if costs.months_to_break_even is None
        else f"{costs.months_to_break_even:.1f}"
    )
    lines.append(
        f"This fleet breaks even at {costs.break_even_requests_per_month:,.0f} requests/month;"
        f" months to recover the capex: {months}"
    )
    if plan.break_even_points:
        where = ", ".join(f"{v:,.0f}" for v in plan.break_even_points)
        lines.append(f"Break-even on the curve (fleet resized per volume): {where} requests/month")
    else:
        lines.append("Break-even on the curve: none between the volumes drawn")
    lines += ["", f"Recommendation: {plan.recommendation.choice}"]
    lines += [f"  - {reason}" for reason in plan.recommendation.reasons]
    return "\n".join(lines)


def write_chart(plan: Plan, path: str) -> None:
    """Monthly cost against requests per month for cloud, on-prem and hybrid (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlacementInputError(
            "chart", "needs matplotlib: pip install 'onprem-llm[chart]'"
        ) from None
    volumes = [p.requests_per_month for p in plan.curve]
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    flat = plan.inputs.api_cost_per_request
    api = f"${flat:g} a request" if flat is not None else plan.inputs.api
    axes.plot(volumes, [p.cloud for p in plan.curve], label=f"cloud API ({api})")
    axes.plot(volumes, [p.onprem for p in plan.curve], label=f"on-prem ({plan.platform.label})")
    axes.plot(volumes, [p.hybrid for p in plan.curve], label="hybrid", linestyle="--")
    for volume in plan.break_even_points:
        axes.axvline(volume, color="grey", linewidth=0.8, linestyle=":")
        axes.annotate(
            f"break-even\n{volume / 1e6:,.1f}M/month",
            (volume, volume * plan.api_cost_per_request),
            textcoords="offset points",
            xytext=(6, -28),
            fontsize=8,
        )
    axes.axvline(plan.inputs.requests_per_month, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("requests per month")
    axes.set_ylabel("USD per month")
    axes.set_title(f"{plan.inputs.model.name}: monthly cost against volume")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise PlacementInputError("chart", f"cannot write {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
