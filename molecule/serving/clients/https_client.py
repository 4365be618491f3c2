"""What the clients share: HTTPS requests verified against the test CA, never through a proxy."""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
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


# The scenario's embedding model (the semantic cache's): it answers /v1/embeddings only.
EMBEDDING_MODELS = {"minilm"}


def first_engine_model(base: str, key: str) -> str:
    """The first chat model engines serve (the list also holds cloud-only and embedding
    models)."""
    with send(base + "/v1/models", headers=bearer(key), timeout=30) as reply:
        return next(
            m["id"]
            for m in json.load(reply)["data"]
            if m["owned_by"] != "cloud" and m["id"] not in EMBEDDING_MODELS
        )


def run_load(
    url: str,
    headers: dict[str, str],
    body_for: Callable[[int], bytes],
    workers: int,
    stop_file: str,
    max_seconds: float,
    max_requests: int | None = None,
    pause: float = 0.1,
) -> dict[str, Any]:
    """Workers POST body_for(n) (n counts up per worker) to url until the stop file appears or a
    bound is reached, pausing between requests. Returns ok and failed counts, the first errors,
    the Cache-Status results ("direct" when HAProxy went to the engines itself) and seconds."""
    lock = threading.Lock()
    result: dict[str, Any] = {"ok": 0, "failed": 0, "errors": [], "cache": {}}
    started = time.time()

    def worker(number: int) -> None:
        while not os.path.exists(stop_file) and time.time() - started < max_seconds:
            with lock:
                if max_requests is not None and result["ok"] + result["failed"] >= max_requests:
                    return
            number += workers
            try:
                with send(url, body_for(number), headers, 120) as reply:
                    json.load(reply)["choices"][0]
                    parts = (reply.headers.get("Cache-Status") or "direct").split(";")
                    status = parts[1].strip() if len(parts) > 1 else parts[0]
                with lock:
                    result["ok"] += 1
                    result["cache"][status] = result["cache"].get(status, 0) + 1
            except Exception as error:
                with lock:
                    result["failed"] += 1
                    if len(result["errors"]) < 20:
                        detail = error.read().decode()[:200] if hasattr(error, "read") else ""
                        result["errors"].append(f"{time.time() - started:.1f}s {error!r} {detail}")
            time.sleep(pause)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["seconds"] = round(time.time() - started, 1)
    return result
