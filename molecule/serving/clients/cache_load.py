"""Load for the cache tests: cache_load.py BASE KEY WORKERS STOP_FILE. Workers send a mix of
repeated (cached), new deterministic and sampled chat completions until the stop file appears
(at most 600 s); prints how many succeeded, the failures and the cache results as JSON."""

import json
import os
import sys

from https_client import bearer, run_load


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
    url = base + "/v1/chat/completions"
    print(json.dumps(run_load(url, bearer(key), body, workers, stop, max_seconds=600)))


main()
