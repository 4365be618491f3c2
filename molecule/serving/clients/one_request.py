"""One chat completion to the first engine-served model: one_request.py BASE KEY; prints the
status."""

import json
import sys
import urllib.error

from https_client import bearer, first_engine_model, send


def main() -> None:
    base, key = sys.argv[1:3]
    model = first_engine_model(base, key)
    messages = [{"role": "user", "content": "hi"}]
    body = json.dumps({"model": model, "max_tokens": 2, "messages": messages}).encode()
    try:
        with send(base + "/v1/chat/completions", body, bearer(key)) as reply:
            print(reply.status)
    except urllib.error.HTTPError as error:
        print(error.code)


main()
