"""Filter that turns the gateway's API keys into the sha256 -> tenant map HAProxy reads."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils._api_keys import (
    DEFAULT_MIN_LENGTH,
    ApiKeyError,
    hash_api_keys,
    map_lines,
)


def api_key_hash(
    keys_by_tenant: Any,
    variable: str = "haproxy_api_keys",
    min_length: int = DEFAULT_MIN_LENGTH,
) -> list[str]:
    """Return map lines ``<sha256hex> <tenant>``; bad input fails naming the variable."""
    try:
        return map_lines(hash_api_keys(keys_by_tenant, variable, int(min_length)))
    except (ApiKeyError, ValueError, TypeError) as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    """API key filters."""

    def filters(self) -> dict[str, Any]:
        return {"api_key_hash": api_key_hash}
