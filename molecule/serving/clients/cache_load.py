"""Load for the cache tests: cache_load.py BASE KEY WORKERS STOP_FILE. Workers send a mix of
repeated (cached), new deterministic and sampled chat completions until the stop file appears
(at most 600 s); prints how many succeeded, the failures and the cache results as JSON."""

import json
import os
import sys
import threading
import time

from https_client import bearer, send

MAX_SECONDS = 600


def body(number: int) -> bytes:
    kind = number % 3
    content = [f"load repeat {number % 5}", "load new " + os.urandom(6).hex(), "load sampled"][kind]
    request = {
        "model": "tiny-llama",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0.7 if kind == 2 else 0,
    }
    return json.dumps(request).encode()


def main() -> None:
    base, key, workers, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    lock = threading.Lock()
    result: dict = {"ok": 0, "failed": 0, "errors": [], "cache": {}}
    started = time.time()

    def worker(number: int) -> None:
        while not os.path.exists(stop) and time.time() - started < MAX_SECONDS:
            number += workers
            try:
                with send(base + "/v1/chat/completions", body(number), bearer(key), 120) as reply:
                    json.load(reply)["choices"][0]
                    # No Cache-Status: HAProxy went to the engines itself (service down).
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
            time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result))


main()
