"""COUNT long requests, one every GAP seconds, all in flight together:
burst.py URL KEY DATA_CLASS MODEL COUNT GAP MAX_TOKENS CHOICES; one JSON line each with the
status and X-Route (status 0 and the error's type when no answer came)."""

import json
import sys
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

from https_client import bearer, send


def main() -> None:
    url, key, data_class, model, count, gap, max_tokens, choices = sys.argv[1:9]
    body = json.dumps(
        {
            "model": model,
            "max_tokens": int(max_tokens),
            "ignore_eos": True,
            "n": int(choices),
            "messages": [{"role": "user", "content": "Count slowly from one to ten."}],
        }
    ).encode()
    headers = bearer(key) | {"Cache-Control": "no-store", "X-Data-Class": data_class}

    def one(number: int) -> dict:
        time.sleep(number * float(gap))
        try:
            with send(url, body, headers, 120) as reply:
                reply.read()
                return {"status": reply.status, "route": reply.headers.get("X-Route")}
        except urllib.error.HTTPError as error:
            return {"status": error.code, "route": error.headers.get("X-Route")}
        except Exception as error:
            return {"status": 0, "route": type(error).__name__}

    with ThreadPoolExecutor(int(count)) as pool:
        for result in pool.map(one, range(int(count))):
            print(json.dumps(result))


main()
