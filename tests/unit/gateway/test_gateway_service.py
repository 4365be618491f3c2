"""The service as run by systemd: listeners, a graceful stop, SIGTERM, and TLS to Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gateway_fakes import CHAT, TENANT, base_config, chat_body, merge
from redis.exceptions import ConnectionError as RedisConnectionError

from onprem_llm.gateway.config import parse_config
from onprem_llm.gateway.service import serve
from onprem_llm.gateway.store import build_client, close_client

SRC = Path(__file__).resolve().parents[3] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_config(upstream: str, socket_path: Path, metrics_port: int) -> dict[str, Any]:
    config = merge(
        base_config(upstream),
        {
            "metrics_listen": {"host": "127.0.0.1", "port": metrics_port},
            # Nothing listens there: the service must serve anyway.
            "redis": {"hosts": [{"host": "127.0.0.1", "port": free_port()}]},
            "shutdown_grace_seconds": 5,
        },
    )
    config["listen"] = {"unix": str(socket_path), "mode": "0600"}
    return config


async def wait_for_path(path: Path) -> None:
    for _unused in range(500):
        if path.exists():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.asyncio
async def test_serve_answers_and_finishes_requests_in_flight_when_stopped(
    engine: Any, tmp_path: Path
) -> None:
    socket_path = tmp_path / "gateway.sock"
    metrics_port = free_port()
    config = parse_config(service_config(engine.url, socket_path, metrics_port))
    stop = asyncio.Event()
    server = asyncio.ensure_future(serve(config, stop=stop))
    await wait_for_path(socket_path)
    assert socket_path.stat().st_mode & 0o777 == 0o600
    headers = {"X-Tenant-ID": TENANT}
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"http://gateway{CHAT}", json=chat_body(), headers=headers) as r:
            assert r.status == 200
            assert r.headers["Cache-Status"] == "onprem-llm; fwd=miss; detail=cache-unavailable"
        async with aiohttp.ClientSession() as plain:
            async with plain.get(f"http://127.0.0.1:{metrics_port}/health") as health:
                assert health.status == 200
                assert (await health.json())["redis"]["state"] == "down"
            async with plain.get(f"http://127.0.0.1:{metrics_port}/metrics") as metrics:
                assert "onprem_llm_gateway_requests_total" in await metrics.text()

        engine.gate = asyncio.Event()
        in_flight = asyncio.ensure_future(
            session.post(f"http://gateway{CHAT}", json=chat_body(seed=5), headers=headers)
        )
        for _unused in range(200):
            if engine.calls == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.sleep(0.1)
        assert not server.done(), "the service waits for the request in flight"
        async with (
            aiohttp.ClientSession() as plain,
            plain.get(f"http://127.0.0.1:{metrics_port}/health") as health,
        ):
            assert health.status == 503
            assert (await health.json())["status"] == "stopping"
        engine.gate.set()
        response = await in_flight
        assert response.status == 200
        assert json.loads(await response.read())["id"] == "cmpl-2"
    await asyncio.wait_for(server, timeout=10)


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    socket_path = tmp_path / "gateway.sock"
    config_path = tmp_path / "gateway.json"
    config_path.write_text(
        json.dumps(service_config("http://127.0.0.1:1", socket_path, free_port()))
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "onprem_llm.gateway", "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _unused, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "serving on unix:" in stderr
    assert "stopping" in stderr
    assert "Traceback" not in stderr


# --- TLS to Redis --------------------------------------------------------------------------


def make_certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `name` (no IP address in it)."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "2", "-subj", "/CN=test-ca",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return ca_crt, crt, key


async def answer_resp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough of Redis: HELLO, +PONG to PING, +OK to anything else."""
    try:
        while line := await reader.readline():
            count = int(line[1:])
            parts = []
            for _unused in range(count):
                size = int((await reader.readline())[1:])
                parts.append((await reader.readexactly(size + 2))[:-2])
            command = parts[0].upper()
            if command == b"HELLO":
                proto = int(parts[1]) if len(parts) > 1 else 2
                kind = b"%" if proto == 3 else b"*"
                count = b"2" if proto == 3 else b"4"
                writer.write(kind + count + b"\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
                writer.write(b"$5\r\nproto\r\n:" + str(proto).encode() + b"\r\n")
            else:
                writer.write(b"+PONG\r\n" if command == b"PING" else b"+OK\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_tls_to_redis_verifies_the_ca_and_the_server_name(tmp_path: Path) -> None:
    ca, crt, key = make_certificates(tmp_path, "redis.internal")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(crt, key)
    server = await asyncio.start_server(answer_resp, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    redis = {
        "hosts": [{"host": "127.0.0.1", "port": port}],
        "tls": True,
        "ca_file": str(ca),
        "connect_timeout_ms": 2000,
    }
    try:
        named = build_client(
            parse_config(
                merge(
                    base_config("http://x"), {"redis": {**redis, "server_name": "redis.internal"}}
                )
            ).redis
        )
        assert await named.ping() is True
        await close_client(named)

        by_address = build_client(
            parse_config(merge(base_config("http://x"), {"redis": redis})).redis
        )
        # The certificate names redis.internal, not 127.0.0.1: the handshake must fail.
        with pytest.raises(RedisConnectionError):
            await by_address.ping()
        await close_client(by_address)
    finally:
        server.close()
        await server.wait_closed()


def test_the_gateway_imports_nothing_of_ansible() -> None:
    """Gateways have aiohttp, redis-py and prometheus_client, not Ansible."""
    code = (
        "import sys\n"
        "import onprem_llm.gateway.__main__, onprem_llm.gateway.app, onprem_llm.gateway.purge\n"
        "import onprem_llm.gateway.service\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_runner')"
        " or m in ('onprem_llm.api', 'onprem_llm.runner', 'onprem_llm.cli'))\n"
        "print(bad)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
