"""Cloud API, on-prem or hybrid: the decision framework, as explicit rules with reasons.

In order, the first rule that applies decides:
1. strict data sovereignty (no prompt may leave the premises): on-prem;
2. no operations capacity to run GPU servers: cloud API;
3. volume at or above break-even: on-prem, or hybrid when the load is highly variable
   (own the sustained base, send peaks to the API) or when hybrid costs less than on-prem;
4. volume below break-even: hybrid when some data must stay on premises, when latency is
   critical or when the models are fine-tuned in-house; otherwise cloud API.
Every factor is reported, decisive or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onprem_llm.collection_utils._placement import PlacementInputError
from onprem_llm.costs import Costs

CLOUD = "cloud-api"
ONPREM = "on-prem"
HYBRID = "hybrid"
SOVEREIGNTY_LEVELS = ("none", "partial", "strict")
OPS_LEVELS = ("none", "limited", "strong")


@dataclass(frozen=True)
class Factors:
    data_sovereignty: str = "none"  # none | partial (some data classes) | strict (all)
    ops_capacity: str = "limited"  # none | limited | strong
    latency_sensitive: bool = False
    fine_tuning: bool = False
    peak_to_average: float = 2.0

    def validate(self) -> None:
        if self.data_sovereignty not in SOVEREIGNTY_LEVELS:
            raise PlacementInputError(
                "data_sovereignty", f"expected one of {', '.join(SOVEREIGNTY_LEVELS)}"
            )
        if self.ops_capacity not in OPS_LEVELS:
            raise PlacementInputError("ops_capacity", f"expected one of {', '.join(OPS_LEVELS)}")
        if not self.peak_to_average >= 1:
            raise PlacementInputError(
                "peak_to_average", f"must be 1 or more, got {self.peak_to_average:g}"
            )


def variability(peak_to_average: float) -> str:
    if peak_to_average < 2:
        return "low"
    if peak_to_average < 4:
        return "medium"
    return "high"


@dataclass(frozen=True)
class Recommendation:
    choice: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"choice": self.choice, "reasons": list(self.reasons)}


def _factor_notes(
    factors: Factors, requests: float, costs: Costs | None, hybrid_monthly: float | None = None
) -> list[str]:
    notes = []
    if costs is None:
        notes.append("sustained volume: no platform holds the model, so on-prem is not costed")
    else:
        break_even = costs.break_even_requests_per_month
        ratio = f"{requests / break_even:.2f}x" if break_even > 0 else "above"
        notes.append(
            f"sustained volume: {requests:,.0f} requests/month is {ratio} the break-even"
            f" volume of {costs.break_even_requests_per_month:,.0f}; on-prem"
            f" ${costs.onprem_monthly:,.0f}/month against ${costs.api_monthly:,.0f} on the API"
            + ("" if hybrid_monthly is None else f" and ${hybrid_monthly:,.0f} hybrid")
        )
    sovereignty = {
        "none": "none declared; prompts may go to a cloud API",
        "partial": "some data classes must stay on premises",
        "strict": "every prompt must stay on premises; cloud APIs are excluded",
    }[factors.data_sovereignty]
    notes.append(f"data sovereignty: {sovereignty}")
    ops = {
        "none": "no team to run GPU servers, drivers and engines",
        "limited": "a small team; the staff cost is in the on-prem figure",
        "strong": "an experienced platform team",
    }[factors.ops_capacity]
    notes.append(f"operations capacity: {ops}")
    notes.append(
        "latency: "
        + (
            "critical; owned engines near the users avoid API queues and round trips"
            if factors.latency_sensitive
            else "API latency is acceptable"
        )
    )
    level = variability(factors.peak_to_average)
    notes.append(f"workload variability: peak/average {factors.peak_to_average:g} ({level})")
    notes.append(
        "fine-tuning: "
        + ("in-house fine-tuned models favour owned GPUs" if factors.fine_tuning else "not needed")
    )
    return notes


def recommend(
    factors: Factors,
    requests_per_month: float,
    costs: Costs | None,
    hybrid_monthly: float | None = None,
) -> Recommendation:
    factors.validate()
    notes = _factor_notes(factors, requests_per_month, costs, hybrid_monthly)
    hybrid_cheaper = (
        costs is not None and hybrid_monthly is not None and hybrid_monthly < costs.onprem_monthly
    )
    economical = costs is not None and requests_per_month >= costs.break_even_requests_per_month
    keep_some = factors.data_sovereignty == "partial" or factors.latency_sensitive
    keep_some = keep_some or factors.fine_tuning
    if factors.data_sovereignty == "strict":
        choice, why = ONPREM, "data sovereignty rules out cloud APIs"
        if costs is None:
            why += "; choose a smaller or quantised model that a platform holds"
        if factors.ops_capacity == "none":
            why += "; build or contract operations capacity first"
    elif factors.ops_capacity == "none":
        choice, why = CLOUD, "without operations capacity owned GPUs cannot be run well"
    elif economical and variability(factors.peak_to_average) == "high":
        choice = HYBRID
        why = "volume is above break-even but peaky: own the base load, send peaks to the API"
    elif economical and hybrid_cheaper:
        choice = HYBRID
        why = "volume is above break-even and hybrid costs least: own the base, API for peaks"
    elif economical:
        choice, why = ONPREM, "volume is at or above break-even: owned GPUs cost less"
    elif keep_some:
        choice = HYBRID
        why = "volume is below break-even, but some traffic must or should stay on premises"
    else:
        choice, why = CLOUD, "volume is below break-even: the API costs less"
    return Recommendation(choice=choice, reasons=(f"decision: {why}", *notes))
