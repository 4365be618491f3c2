"""The smallest site that runs the gateway service, for the validation tests: gateways, Redis
hosts with their passwords, and whatever other groups a test adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The cache user's password: no validation output may show it.
REDIS_CACHE_PASSWORD = "redis-cache-password-0123456789"


def make_wheel(directory: Path) -> str:
    """An empty zip named as the gateway's wheel: the validation checks the name and the file."""
    path = directory / "onprem_llm-0.1.0-py3-none-any.whl"
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return str(path)


def gateway_site(
    gateways: dict[str, dict],
    group_vars: dict | None = None,
    redis_hosts: tuple[str, ...] = ("redis-1",),
    **groups: dict[str, Any],
) -> dict:
    """An inventory (as ansible-inventory reads YAML) of these gateways and Redis hosts."""
    return {
        "all": {
            "vars": {
                "redis_cache_password": REDIS_CACHE_PASSWORD,
                "redis_admin_password": "redis-admin-password-0123456789",
                "redis_exporter_password": "redis-exporter-password-012345",
            },
            "children": {
                "gateways": {"hosts": gateways, "vars": group_vars or {}},
                "redis": {"hosts": {name: {} for name in redis_hosts}},
                **groups,
            },
        }
    }
