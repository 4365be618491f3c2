"""Filters of the gpu_validate role (pure logic in module_utils/_gpu_gates.py)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _gpu_gates as gates


def gpu_gates(facts: dict[str, Any], profile: str, **observations: Any) -> dict[str, Any]:
    """Validation report of one host from its onprem_gpu facts and gate observations."""
    try:
        return gates.gpu_gates(facts, profile, **observations)
    except gates.GateInputError as error:
        raise AnsibleFilterError(str(error)) from None


def gpu_gates_check_skip(skip: Any, variable: str = "gpu_validate_skip_gates") -> list[str]:
    """The skip list, failing on a name that is not a gate."""
    try:
        return gates.check_skip(skip, variable)
    except gates.GateInputError as error:
        raise AnsibleFilterError(str(error)) from None


def gpu_profile_check(facts: dict[str, Any], inventory_profile: str) -> dict[str, Any]:
    """Whether the inventory's profile fits the GPUs read, with advice naming the real cause."""
    return gates.profile_check(facts or {}, str(inventory_profile or ""))


class FilterModule:
    """GPU acceptance gate filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "gpu_gates": gpu_gates,
            "gpu_gates_check_skip": gpu_gates_check_skip,
            "gpu_profile_check": gpu_profile_check,
        }
