"""Load for the rolling restart tests:
rolling_load.py BASE KEY WORKERS MAX_REQUESTS MAX_SECONDS STOP_FILE PAUSE. Workers send chat
completions to the first engine-served model until the stop file appears or a bound is reached,
pausing PAUSE seconds between requests; prints a JSON summary."""

import json
import os
import sys
import threading
import time

from https_client import bearer, first_engine_model, send


def main() -> None:
    base, key, workers, max_requests, max_seconds, stop, pause = sys.argv[1:8]
    workers, max_requests, max_seconds = int(workers), int(max_requests), float(max_seconds)
    headers = bearer(key)
    model = first_engine_model(base, key)
    messages = [{"role": "user", "content": "hello"}]
    body = json.dumps({"model": model, "max_tokens": 4, "messages": messages}).encode()
    lock = threading.Lock()
    result: dict = {"ok": 0, "failed": 0, "errors": [], "servers": {}}
    started = time.time()

    def worker() -> None:
        while not os.path.exists(stop) and time.time() - started < max_seconds:
            with lock:
                if result["ok"] + result["failed"] >= max_requests:
                    return
            try:
                with send(base + "/v1/chat/completions", body, headers, 120) as reply:
                    json.load(reply)["choices"][0]
                with lock:
                    result["ok"] += 1
            except Exception as error:
                with lock:
                    result["failed"] += 1
                    if len(result["errors"]) < 20:
                        detail = error.read().decode()[:200] if hasattr(error, "read") else ""
                        result["errors"].append(f"{time.time() - started:.1f}s {error!r} {detail}")
            time.sleep(float(pause))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result))


main()
