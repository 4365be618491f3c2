"""Server TLS that follows certificate renewals: the files are loaded at start, and a handshake
after either file changed (the pki role's next run copies a renewed pair) loads them again, so
a renewed certificate is served without a restart. A pair that does not load (a half-written
copy) keeps the previous one in use until the next handshake tries again."""

from __future__ import annotations

import logging
import os
import ssl

from .config import ServerTLS

log = logging.getLogger("onprem_llm.gateway")

INTERMEDIATE_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def _stamp(path: str) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ReloadingServerContext:
    """An SSLContext for a listener whose certificate is read again once its files change."""

    def __init__(self, files: ServerTLS) -> None:
        self._files = files
        self._stamps = self._read_stamps()
        self._current = self._load()
        # The listening context: every handshake passes through _select, which hands the
        # connection the context of the current files.
        self.context = self._load()
        self.context.sni_callback = self._select

    def _read_stamps(self) -> tuple[tuple[int, int, int], ...]:
        return (_stamp(self._files.certificate), _stamp(self._files.private_key))

    def _load(self) -> ssl.SSLContext:
        # Mozilla's "intermediate" profile: TLS 1.2 with forward-secret AEAD suites, or TLS 1.3.
        # One key-exchange group (this Python sets no list): P-256, which every client has.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(INTERMEDIATE_TLS12_CIPHERS)
        context.set_ecdh_curve("prime256v1")
        context.load_cert_chain(self._files.certificate, self._files.private_key)
        return context

    def _select(
        self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext
    ) -> None:
        try:
            stamps = self._read_stamps()
            if stamps != self._stamps:
                self._current = self._load()
                self._stamps = stamps
                log.info("loaded the renewed certificate %s", self._files.certificate)
        except (OSError, ssl.SSLError) as exc:
            log.warning("keeping the current certificate: %s", exc)
        connection.context = self._current
