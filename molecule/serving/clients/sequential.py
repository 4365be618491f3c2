"""COUNT chat requests one after another: sequential.py URL KEY COUNT MODEL; one line each with
the status and who answered (000 and the error's type when no answer came)."""

import json
import sys
import time
import urllib.error

from https_client import bearer, send


def main() -> None:
    url, key, count, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    for _unused in range(count):
        try:
            with send(url, json.dumps(body).encode(), bearer(key)) as reply:
                answer = json.loads(reply.read())
                who = answer.get("stand_in") or answer.get("system_fingerprint") or "?"
                print(reply.status, who, flush=True)
        except urllib.error.HTTPError as error:
            print(error.code, error.read().decode()[:200].replace("\n", " "), flush=True)
        except Exception as error:
            print("000", type(error).__name__, flush=True)
        time.sleep(0.1)


main()
