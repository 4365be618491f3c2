"""The TLS profile check the scenarios run on every endpoint finds what a permissive server
accepts, passes a server held to the intermediate profile, and passes the gateway service's
metrics listener."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from onprem_llm.gateway.config import ServerTLS
from onprem_llm.gateway.tls import ReloadingServerContext

AEAD = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def key_pair(tls_key_pair) -> tuple[Path, Path]:
    return tls_key_pair("prime256v1")


def s_server(key_pair: tuple[Path, Path], *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(key_pair[0]),
         "-key", str(key_pair[1]), "-www", *options],
        env={"OPENSSL_CONF": "/dev/null", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _unused in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server, f"127.0.0.1:{port}"


def test_a_permissive_server_is_caught(key_pair, tls_violations):
    server, endpoint = s_server(key_pair, "-cipher", "DEFAULT@SECLEVEL=0")
    try:
        found = tls_violations(endpoint)
    finally:
        server.terminate()
    assert found == [
        f"{endpoint}: TLS 1.1 accepted",
        f"{endpoint}: TLS 1.2 CBC suites accepted",
        f"{endpoint}: X448 group accepted",
        f"{endpoint}: P-521 group accepted",
    ]


def test_a_server_without_tls13_is_caught(key_pair, tls_violations):
    server, endpoint = s_server(key_pair, "-no_tls1_3", "-cipher", AEAD, "-groups", "X25519:P-256")
    try:
        assert tls_violations(endpoint) == [f"{endpoint}: TLS 1.3 refused"]
    finally:
        server.terminate()


def test_an_intermediate_server_passes(key_pair, tls_violations):
    server, endpoint = s_server(key_pair, "-cipher", AEAD, "-groups", "X25519:P-256:P-384")
    try:
        assert tls_violations(endpoint) == []
    finally:
        server.terminate()


def test_the_gateway_service_metrics_listener_passes(key_pair, tls_violations):
    context = ReloadingServerContext(ServerTLS(str(key_pair[0]), str(key_pair[1]))).context
    listener = socket.create_server(("127.0.0.1", 0))
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _unused = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert tls_violations(endpoint) == []
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
