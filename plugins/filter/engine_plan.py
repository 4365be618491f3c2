"""Filter that places engine instances on a host's GPUs: onprem.llm.engine_plan."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _placement


def engine_plan(model: Any, host: Any, **options: Any) -> dict[str, Any]:
    """Return the placement, or fail with the reason (bad input names the field)."""
    try:
        placement = _placement.engine_plan(model, host, **options)
    except _placement.PlacementInputError as error:
        raise AnsibleFilterError(f"engine_plan: {error}") from None
    if not placement["fits"]:
        raise AnsibleFilterError(f"engine_plan: {placement['reason']}")
    return placement


class FilterModule:
    """Engine placement filter."""

    def filters(self) -> dict[str, Any]:
        return {"engine_plan": engine_plan}
