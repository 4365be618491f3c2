"""The metrics listener over TLS: served with the configured pair, a renewed pair served from
the next connection without a restart, a half-copied pair never served."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_gateway_service import free_port, make_certificates, service_config

from onprem_llm.gateway.config import ConfigError, parse_config
from onprem_llm.gateway.service import serve


def served_certificate(port: int) -> bytes:
    """The DER certificate the listener presents (not verified: this only reads it)."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def replace(source: Path, target: Path) -> None:
    """As Ansible's copy module writes: a new file renamed over the old one."""
    temporary = target.with_suffix(".new")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


async def health(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://localhost:{port}/health", ssl=context) as reply,
    ):
        return reply.status


@pytest.mark.asyncio
async def test_metrics_listener_serves_tls_and_follows_a_renewal(
    engine: Any, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    first_ca, first_crt, first_key = make_certificates(first, "localhost")
    second_ca, second_crt, second_key = make_certificates(second, "localhost")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copyfile(first_crt, live / "server.crt")
    shutil.copyfile(first_key, live / "server.key")

    port = free_port()
    raw = service_config(engine.url, tmp_path / "gateway.sock", port)
    raw["metrics_listen"]["tls"] = {
        "certificate": str(live / "server.crt"),
        "private_key": str(live / "server.key"),
    }
    stop = asyncio.Event()
    server = asyncio.ensure_future(serve(parse_config(raw), stop=stop))
    try:
        for _unused in range(500):
            try:
                assert await health(port, first_ca) in (200, 503)
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.01)
        assert await asyncio.to_thread(served_certificate, port) == der(first_crt)
        # Plain HTTP gets no answer on a TLS listener.
        with pytest.raises(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/health") as reply,
            ):
                await reply.read()

        # Half-copied: the new certificate beside the old key is never served.
        replace(second_crt, live / "server.crt")
        assert await asyncio.to_thread(served_certificate, port) == der(first_crt)
        # Both copied: the next connection gets the renewed pair, same process.
        replace(second_key, live / "server.key")
        assert await asyncio.to_thread(served_certificate, port) == der(second_crt)
        assert await health(port, second_ca) in (200, 503)
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            {
                "host": "0.0.0.0",
                "port": 8081,
                "tls": {"certificate": "server.crt", "private_key": "/k"},
            },
            "metrics_listen.tls.certificate: expected an absolute path, got 'server.crt'",
        ),
        (
            {"host": "0.0.0.0", "port": 8081, "tls": {"certificate": "/c"}},
            "metrics_listen.tls.private_key: missing (required)",
        ),
        (
            {"unix": "/run/metrics.sock", "tls": {"certificate": "/c", "private_key": "/k"}},
            "metrics_listen.tls: unknown key",
        ),
    ],
)
def test_bad_tls_settings_name_the_key(listen: dict, message: str, tmp_path: Path) -> None:
    raw = service_config("http://127.0.0.1:1", tmp_path / "gateway.sock", 8081)
    raw["metrics_listen"] = listen
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(raw)
