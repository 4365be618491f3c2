"""Cloud API versus on-premises cost per month, the break-even volume and payback time.

API per month        = requests x cost per request
                       (cost per request = prompt tokens x input price + completion tokens x
                        output price, per 1M tokens; or a flat --api-cost-per-request)
amortisation         = systems x capex per system / amortisation months
energy (kWh)         = systems x kW x (idle fraction + (1 - idle fraction) x utilisation)
                       x 730 h x PUE
power                = energy x price per kWh      (PUE covers facility cooling power)
staff                = engineer cost per month x max(minimum engineers,
                                                     nodes / nodes per engineer)
support              = capex x support fraction per year / 12   (hardware and software support)
colocation           = systems x full-load kW x price per kW per month   (space, power feed)
network              = nodes x network cost per node per month   (switch ports, optics, fabric)
opex                 = power + cooling beyond PUE + staff + support + colocation + network + other
on-prem per month    = amortisation + opex
break-even volume    = on-prem per month / API cost per request (for this fleet)
months to break even = capex / (API per month - opex), or never when that is not positive
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from onprem_llm.collection_utils._placement import PlacementInputError

HOURS_PER_MONTH = 730.0

InputError = PlacementInputError


@dataclass(frozen=True)
class CostInputs:
    """Defaults describe one H200 HGX server; every one is a CLI flag."""

    requests_per_month: float
    api_cost_per_request: float = 0.01
    systems: int = 1
    nodes: int = 1
    capex_per_system: float = 300_000.0
    power_kw_per_system: float = 10.2
    amortisation_months: int = 36
    electricity_per_kwh: float = 0.12
    pue: float = 1.3
    utilisation: float = 0.6
    idle_power_fraction: float = 0.3
    cooling_per_month: float = 0.0
    # One platform engineer, fully loaded (about $190K a year); one per 16 GPU servers, and
    # never less than half of one: on-call, driver and engine upgrades, capacity work.
    staff_per_month: float = 16_000.0
    nodes_per_engineer: float = 16.0
    min_engineers: float = 0.5
    # Hardware warranty plus NVIDIA AI Enterprise style software support, per year of capex.
    support_fraction_per_year: float = 0.08
    # Colocation of high-density racks, per kW of full-load IT power, per month.
    colocation_per_kw_month: float = 200.0
    # Per GPU node: leaf/spine ports, optics and cabling amortised, fabric support.
    network_per_node_month: float = 600.0
    other_opex_per_month: float = 0.0

    def validate(self) -> None:
        non_negative = {
            "requests_per_month": self.requests_per_month,
            "capex_per_system": self.capex_per_system,
            "power_kw_per_system": self.power_kw_per_system,
            "electricity_per_kwh": self.electricity_per_kwh,
            "cooling_per_month": self.cooling_per_month,
            "staff_per_month": self.staff_per_month,
            "min_engineers": self.min_engineers,
            "support_fraction_per_year": self.support_fraction_per_year,
            "colocation_per_kw_month": self.colocation_per_kw_month,
            "network_per_node_month": self.network_per_node_month,
            "other_opex_per_month": self.other_opex_per_month,
        }
        numbers = {
            **non_negative,
            "api_cost_per_request": self.api_cost_per_request,
            "utilisation": self.utilisation,
            "idle_power_fraction": self.idle_power_fraction,
            "pue": self.pue,
            "nodes_per_engineer": self.nodes_per_engineer,
        }
        for name, value in numbers.items():
            if not math.isfinite(value):
                raise InputError(name, f"must be a finite number, got {value:g}")
        for name, value in non_negative.items():
            if value < 0:
                raise InputError(name, f"must be 0 or more, got {value:g}")
        if self.api_cost_per_request <= 0:
            raise InputError(
                "api_cost_per_request", f"must be greater than 0, got {self.api_cost_per_request:g}"
            )
        if not 0 < self.utilisation <= 1:
            raise InputError(
                "utilisation", f"must be above 0 and at most 1, got {self.utilisation:g}"
            )
        if not 0 <= self.idle_power_fraction <= 1:
            raise InputError(
                "idle_power_fraction", f"must be 0 to 1, got {self.idle_power_fraction:g}"
            )
        if self.pue < 1:
            raise InputError("pue", f"must be 1 or more, got {self.pue:g}")
        if self.nodes_per_engineer <= 0:
            raise InputError(
                "nodes_per_engineer", f"must be greater than 0, got {self.nodes_per_engineer:g}"
            )
        if self.amortisation_months < 1:
            raise InputError(
                "amortisation_months", f"must be 1 or more, got {self.amortisation_months}"
            )
        if self.systems < 1:
            raise InputError("systems", f"must be 1 or more, got {self.systems}")


@dataclass(frozen=True)
class Costs:
    """Every component of the comparison, in USD per month unless named otherwise."""

    api_monthly: float
    capex_total: float
    amortisation_monthly: float
    average_power_kw: float
    energy_kwh_monthly: float
    power_monthly: float
    cooling_monthly: float
    staff_monthly: float
    engineers: float
    support_monthly: float
    colocation_monthly: float
    network_monthly: float
    other_monthly: float
    opex_monthly: float
    onprem_monthly: float
    onprem_cost_per_request: float | None
    break_even_requests_per_month: float
    months_to_break_even: float | None  # None: never

    @property
    def monthly_saving(self) -> float:
        return self.api_monthly - self.onprem_monthly

    def to_dict(self) -> dict[str, Any]:
        def money(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "api": {"monthly": money(self.api_monthly)},
            "onprem": {
                "capex_total": money(self.capex_total),
                "amortisation_monthly": money(self.amortisation_monthly),
                "average_power_kw": round(self.average_power_kw, 3),
                "energy_kwh_monthly": round(self.energy_kwh_monthly, 1),
                "power_monthly": money(self.power_monthly),
                "cooling_monthly": money(self.cooling_monthly),
                "staff_monthly": money(self.staff_monthly),
                "engineers": round(self.engineers, 2),
                "support_monthly": money(self.support_monthly),
                "colocation_monthly": money(self.colocation_monthly),
                "network_monthly": money(self.network_monthly),
                "other_monthly": money(self.other_monthly),
                "opex_monthly": money(self.opex_monthly),
                "monthly": money(self.onprem_monthly),
                "cost_per_request": (
                    None
                    if self.onprem_cost_per_request is None
                    else round(self.onprem_cost_per_request, 6)
                ),
            },
            "break_even": {
                "requests_per_month": round(self.break_even_requests_per_month),
                "months": (
                    "never"
                    if self.months_to_break_even is None
                    else round(self.months_to_break_even, 2)
                ),
                "monthly_saving": money(self.monthly_saving),
            },
        }


def compute_costs(inputs: CostInputs) -> Costs:
    inputs.validate()
    api_monthly = inputs.requests_per_month * inputs.api_cost_per_request
    capex = inputs.systems * inputs.capex_per_system
    amortisation = capex / inputs.amortisation_months
    load = inputs.idle_power_fraction + (1 - inputs.idle_power_fraction) * inputs.utilisation
    average_kw = inputs.systems * inputs.power_kw_per_system * load
    energy_kwh = average_kw * HOURS_PER_MONTH * inputs.pue
    power = energy_kwh * inputs.electricity_per_kwh
    engineers = max(inputs.min_engineers, inputs.nodes / inputs.nodes_per_engineer)
    staff = engineers * inputs.staff_per_month
    support = capex * inputs.support_fraction_per_year / 12
    colocation = inputs.systems * inputs.power_kw_per_system * inputs.colocation_per_kw_month
    network = inputs.nodes * inputs.network_per_node_month
    opex = power + inputs.cooling_per_month + staff + support + colocation + network
    opex += inputs.other_opex_per_month
    onprem = amortisation + opex
    margin = api_monthly - opex
    return Costs(
        api_monthly=api_monthly,
        capex_total=capex,
        amortisation_monthly=amortisation,
        average_power_kw=average_kw,
        energy_kwh_monthly=energy_kwh,
        power_monthly=power,
        cooling_monthly=inputs.cooling_per_month,
        staff_monthly=staff,
        engineers=engineers,
        support_monthly=support,
        colocation_monthly=colocation,
        network_monthly=network,
        other_monthly=inputs.other_opex_per_month,
        opex_monthly=opex,
        onprem_monthly=onprem,
        onprem_cost_per_request=(
            onprem / inputs.requests_per_month if inputs.requests_per_month > 0 else None
        ),
        break_even_requests_per_month=onprem / inputs.api_cost_per_request,
        months_to_break_even=capex / margin if margin > 0 else None,
    )


def overflow_fraction(peak_to_average: float, capacity: float) -> float:
    """Share of the month's requests above an on-prem capacity (in multiples of the average
    rate), for a load whose rate falls linearly from the peak: a load-duration curve from
    peak p down to 2 - p when p <= 2 (mean 1), or from p to 0 over 2 / p of the time."""
    p = peak_to_average
    if capacity >= p:
        return 0.0
    if p <= 1.0:
        return 0.0
    low = max(0.0, 2.0 - p)
    duration = 1.0 if p <= 2.0 else 2.0 / p
    if capacity <= low:
        return (1.0 - capacity) if p <= 2.0 else 1.0 - capacity * duration + 0.0
    # Area of the triangle between the line and the capacity, over the mean of 1.
    return duration * (p - capacity) ** 2 / (2 * (p - low))
