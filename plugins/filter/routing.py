"""Filter onprem.llm.gateway_routes: the gateway's routing table from inventory variables."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _routing


def gateway_routes(engines: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Routing table and its HAProxy maps (key `maps`); the arguments are routing_table's
    (documented in gateway_routes.yml); errors name the variable."""
    try:
        table = _routing.routing_table(engines, *args, **kwargs)
    except _routing.RoutingInputError as error:
        raise AnsibleFilterError(f"gateway_routes: {error}") from None
    table["maps"] = _routing.route_maps(table)
    return table


class FilterModule:
    """Gateway routing filter."""

    def filters(self) -> dict[str, Any]:
        return {"gateway_routes": gateway_routes}
