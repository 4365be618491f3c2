"""Load for the rolling restart tests:
rolling_load.py BASE KEY WORKERS MAX_REQUESTS MAX_SECONDS STOP_FILE PAUSE. Workers send chat
completions to the first engine-served model until the stop file appears or a bound is reached,
pausing PAUSE seconds between requests; prints a JSON summary."""

import json
import sys

from https_client import bearer, first_engine_model, run_load


def main() -> None:
    base, key, workers, max_requests, max_seconds, stop, pause = sys.argv[1:8]
    messages = [{"role": "user", "content": "hello"}]
    model = first_engine_model(base, key)
    body = json.dumps({"model": model, "max_tokens": 4, "messages": messages}).encode()
    result = run_load(
        base + "/v1/chat/completions",
        bearer(key),
        lambda _number: body,
        int(workers),
        stop,
        max_seconds=float(max_seconds),
        max_requests=int(max_requests),
        pause=float(pause),
    )
    print(json.dumps(result))


main()
