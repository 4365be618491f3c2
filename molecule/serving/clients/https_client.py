"""What the clients share: HTTPS requests verified against the test CA, never through a proxy."""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

CA = "/etc/onprem-llm-test-ca.crt"
CONTEXT = ssl.create_default_context(cafile=CA)
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=CONTEXT)
)


def send(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Any:
    """Open the request (POST with a body, GET without); raises urllib's HTTPError on >= 400."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    return _OPENER.open(request, timeout=timeout)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def first_engine_model(base: str, key: str) -> str:
    """The first model engines serve (the list also holds cloud-only models)."""
    with send(base + "/v1/models", headers=bearer(key), timeout=30) as reply:
        return next(m["id"] for m in json.load(reply)["data"] if m["owned_by"] != "cloud")
