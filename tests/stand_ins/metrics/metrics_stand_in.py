#!/usr/bin/env python3
"""Stand-in exporter for tests: serves recorded Prometheus metrics, or records webhook posts.

It is not part of the collection. Counters and histograms of the recorded text grow with time
(value x (1 + seconds since start / 60)), so that rates computed from them are not zero.

Usage:
  metrics_stand_in.py serve FILE PORT        serve FILE on every GET path
  metrics_stand_in.py webhook DIRECTORY PORT store every POST body as DIRECTORY/<n>.json
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
GROWING_TYPES = {"counter", "histogram"}
STARTED = time.monotonic()


def family_types(text: str) -> dict[str, str]:
    types = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            types[parts[2]] = parts[3]
    return types


def family_of(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total", ""):
        if suffix and name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return name


def render(text: str, elapsed: float) -> str:
    """Return the recorded text with growing counters and histograms."""
    types = family_types(text)
    factor = 1 + elapsed / 60
    lines = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and types.get(family_of(match.group(1), types)) in GROWING_TYPES:
            value = float(match.group(3)) * factor
            line = f"{match.group(1)}{match.group(2) or ''} {value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def serve(metrics_file: Path, port: int) -> None:
    text = metrics_file.read_text()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render(text, time.monotonic() - STARTED).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def webhook(directory: Path, port: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(len(list(directory.glob("*.json"))))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            (directory / f"{next(counter):05d}.json").write_bytes(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("serve", "webhook"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "serve":
        serve(Path(argv[2]), int(argv[3]))
    else:
        webhook(Path(argv[2]), int(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
