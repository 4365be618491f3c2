"""One request for the cache tests: cache_request.py URL KEY BODY EXTRA_HEADERS_JSON; prints the
status, the headers and the body as JSON, or for a stream each server-sent event as received."""

import json
import sys
import urllib.error

from https_client import bearer, send


def main() -> None:
    url, key, body, extra = sys.argv[1:5]
    headers = bearer(key) | json.loads(extra)
    try:
        reply = send(url, body.encode(), headers, timeout=120)
        status = reply.status
    except urllib.error.HTTPError as error:
        reply, status = error, error.code
    with reply:
        received = {name.lower(): value for name, value in reply.headers.items()}
        out: dict = {"status": status, "headers": received}
        if received.get("content-type", "").startswith("text/event-stream"):
            events, event = [], b""
            for line in reply:
                event += line
                if line in (b"\n", b"\r\n"):
                    events.append(event.decode())
                    event = b""
            out["events"] = events
        else:
            out["body"] = reply.read().decode()
    print(json.dumps(out))


main()
