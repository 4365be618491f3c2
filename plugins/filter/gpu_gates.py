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


class FilterModule:
    """GPU acceptance gate filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "gpu_gates": gpu_gates,
        }
