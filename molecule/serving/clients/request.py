"""One request: request.py URL KEY DATA_CLASS BODY; prints status, body, Retry-After, X-Route
and X-Request-ID as JSON. An empty KEY, DATA_CLASS or BODY is left out (no body: a GET)."""

import json
import sys
import urllib.error

from https_client import send


def main() -> None:
    url, key, data_class, body = sys.argv[1:5]
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    if data_class:
        headers["X-Data-Class"] = data_class
    try:
        with send(url, body.encode() if body else None, headers) as reply:
            out = {"status": reply.status, "body": reply.read().decode()}
            answer = reply
    except urllib.error.HTTPError as error:
        out = {"status": error.code, "body": error.read().decode()}
        out["retry_after"] = error.headers.get("Retry-After")
        answer = error
    out["route"] = answer.headers.get("X-Route")
    out["request_id"] = answer.headers.get("X-Request-ID")
    print(json.dumps(out))


main()
