"""Filter onprem.llm.gateway_routes: the gateway's routing table from inventory variables."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils import _routing


def gateway_routes(
    engines: Any,
    data_classes: Any,
    default_class: Any,
    providers: Any,
    models: Any,
    tenant_models: Any,
    tenants: Any,
    model_rate_limits: Any = None,
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt",
) -> dict[str, Any]:
    """Routing table and its HAProxy maps (key `maps`); errors name the variable."""
    try:
        table = _routing.routing_table(
            engines,
            data_classes,
            default_class,
            providers,
            models,
            tenant_models,
            list(tenants or []),
            model_rate_limits,
            ca_file,
        )
    except _routing.RoutingInputError as error:
        raise AnsibleFilterError(f"gateway_routes: {error}") from None
    table["maps"] = _routing.route_maps(table)
    return table


class FilterModule:
    """Gateway routing filter."""

    def filters(self) -> dict[str, Any]:
        return {"gateway_routes": gateway_routes}
