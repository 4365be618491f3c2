"""Stand-in for an OpenAI-compatible server (an engine, or a cloud API), for gateway tests.

Python standard library only, so it runs on a bare test host. It answers
/v1/chat/completions with a fixed reply naming the stand-in, /health, and, like vLLM, the
engine-internal /metrics and /tokenize, so that tests can prove the gateway never exposes them.
With --record, every request's path, headers of interest and model go to a JSON-lines file
(never the prompt). With --api-key, requests without that bearer token get 401. With --tls-cert
and --tls-key it serves HTTPS. On SIGTERM it stops as vLLM's server (uvicorn) does: it stops
accepting connections, lets the requests being answered finish for up to --shutdown-timeout
seconds, and exits 0; as a container's first process it would otherwise ignore the signal and
wait for the runtime's SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class InFlight:
    """How many requests are being answered: what a graceful shutdown waits for."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *_unused: object) -> None:
        with self._lock:
            self.count -= 1


def make_handler(options: argparse.Namespace, in_flight: InFlight) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "openai-api-stand-in"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, model: Any) -> None:
            if not options.record:
                return
            entry = {
                "time": time.time(),
                "path": self.path,
                "model": model,
                "data_class": self.headers.get("X-Data-Class"),
                "tenant_header": self.headers.get("X-Tenant-ID"),
                "authorization": bool(self.headers.get("Authorization")),
            }
            with lock, open(options.record, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

        def _authorized(self) -> bool:
            if not options.api_key:
                return True
            return self.headers.get("Authorization") == f"Bearer {options.api_key}"

        def do_GET(self) -> None:
            with in_flight:
                self._get()

        def do_POST(self) -> None:
            with in_flight:
                self._post()

        def _get(self) -> None:
            if self.path == "/health":
                self._send(200, b"", "text/plain")
            elif self.path == "/metrics":
                self._send(200, b"stand_in_engine_internal_metric 1\n", "text/plain")
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": options.model}]})
            else:
                self._send(404, {"detail": "Not Found"})

        def _post(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "invalid JSON"}})
                return
            model = request.get("model")
            self._record(model)
            if not self._authorized():
                self._send(401, {"error": {"message": "stand-in: bad key"}})
                return
            if self.path == "/tokenize":
                self._send(200, {"tokens": [1, 2, 3], "stand_in": options.name})
            elif self.path.endswith("/chat/completions"):
                self._send(
                    200,
                    {
                        "id": "chatcmpl-stand-in",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": f"answer from {options.name}",
                                },
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
                        "stand_in": options.name,
                    },
                )
            else:
                self._send(404, {"detail": "Not Found"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="stand-in-model")
    parser.add_argument("--record", default="")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    # TLS 1.2 suites, as uvicorn's ssl_ciphers (vLLM's --ssl-ciphers); groups follow OPENSSL_CONF.
    parser.add_argument("--tls-ciphers", default="")
    # vLLM's --shutdown-timeout: seconds the requests in flight get to finish after SIGTERM.
    parser.add_argument("--shutdown-timeout", type=float, default=0.0)
    options = parser.parse_args()
    in_flight = InFlight()
    server = ThreadingHTTPServer((options.address, options.port), make_handler(options, in_flight))
    if options.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options.tls_cert, options.tls_key)
        if options.tls_ciphers:
            context.set_ciphers(options.tls_ciphers)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return: from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()
    deadline = time.monotonic() + options.shutdown_timeout
    while in_flight.count and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(0)


if __name__ == "__main__":
    main()
