"""Run the gateway: its listener, the metrics listener, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
from typing import Any

from aiohttp import web

from .app import Gateway, metrics_app
from .config import GatewayConfig, Listen
from .tls import ReloadingServerContext

log = logging.getLogger("onprem_llm.gateway")


def _runner(app: web.Application, grace: float) -> tuple[web.AppRunner, dict[str, Any]]:
    """An AppRunner with the shutdown grace where this aiohttp takes it (runner >= 3.9, site
    before)."""
    runner_takes_it = "shutdown_timeout" in inspect.signature(web.BaseRunner.__init__).parameters
    if runner_takes_it:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=grace)
        return runner, {}
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    return runner, {"shutdown_timeout": grace}


async def _start_site(runner: web.AppRunner, listen: Listen, site_kwargs: dict[str, Any]) -> None:
    if listen.unix:
        site: web.BaseSite = web.UnixSite(runner, listen.unix, **site_kwargs)
        await site.start()
        os.chmod(listen.unix, listen.mode)
    else:
        if listen.tls is not None:
            site_kwargs = {**site_kwargs, "ssl_context": ReloadingServerContext(listen.tls).context}
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True, **site_kwargs)
        await site.start()


def _notify_systemd(state: str) -> None:
    """sd_notify without libsystemd: READY=1 once listening, STOPPING=1 on the way out."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


async def serve(config: GatewayConfig, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set), then finish in-flight requests."""
    gateway = Gateway(config)
    grace = config.shutdown_grace_seconds
    runner, site_kwargs = _runner(gateway.app, grace)
    await runner.setup()
    metrics_runner = None
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    stop = stop or asyncio.Event()
    # Before the listeners exist: a SIGTERM as soon as the socket appears still stops cleanly.
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await _start_site(runner, config.listen, site_kwargs)
        if config.metrics_listen is not None:
            metrics_runner, metrics_kwargs = _runner(metrics_app(gateway), 1.0)
            await metrics_runner.setup()
            await _start_site(metrics_runner, config.metrics_listen, metrics_kwargs)
        log.info(
            "serving on %s, upstream %s, cache %s",
            config.listen.describe(),
            config.upstream_url,
            "on" if config.cache.enabled else "off",
        )
        _notify_systemd("READY=1")
        await stop.wait()
        gateway.stopping = True
        _notify_systemd("STOPPING=1")
        log.info("stopping: finishing requests in flight (up to %gs)", grace)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        # The API listener first (it waits for requests in flight), /health and /metrics last.
        await runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
