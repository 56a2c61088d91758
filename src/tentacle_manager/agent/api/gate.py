"""Accepting connections: the TLS handshake, then the hand-over to the HTTP server.

asyncio drops a failed server-side handshake silently, but an admin whose orchestrator is
refused needs a log line naming the peer, the certificate it presented and the ones trusted.
So the listener accepts plain TCP, upgrades each connection itself with `loop.start_tls`, logs
a refusal with everything known, and only then gives the TLS transport to aiohttp's protocol.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from tentacle_manager.agent.api.tls import presented_certificate
from tentacle_manager.agent.api.trust import TrustList
from tentacle_manager.instances.certificates import thumbprint_of_der

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0


class TlsGate(asyncio.Protocol):
    """One accepted TCP connection on its way to becoming an HTTPS connection."""

    def __init__(
        self,
        context: ssl.SSLContext,
        trust: TrustList,
        http_protocol: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._context = context
        self._trust = trust
        self._http_protocol = http_protocol
        self._upgrade: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello is for the TLS protocol; start_tls resumes
        self._upgrade = asyncio.get_running_loop().create_task(self._hand_over(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        """Only reached if the peer leaves before the handshake starts."""

    async def _hand_over(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        waiting = _Waiting()
        handshake = loop.create_task(
            loop.start_tls(
                raw,
                waiting,
                self._context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        )
        # One turn of the loop runs start_tls up to its wait, and by then it has made the TLS
        # protocol the raw transport's protocol. A failed handshake clears that link, so it is
        # taken now: it leads to the certificate the client presented.
        await asyncio.sleep(0)
        tls_protocol = raw.get_protocol()
        try:
            tls = await handshake
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as error:
            self._log_refusal(raw, tls_protocol, error)
            raw.close()
            return
        http = self._http_protocol()
        tls.set_protocol(http)
        http.connection_made(tls)
        waiting.replay_into(http)

    def _log_refusal(
        self, raw: asyncio.Transport, tls_protocol: object, error: BaseException
    ) -> None:
        der = presented_certificate(getattr(tls_protocol, "_sslobj", None))
        presented = (
            thumbprint_of_der(der) if der else "none" if _no_certificate(error) else "unknown"
        )
        log.warning(
            "Refused a TLS connection from %s: %s. Presented certificate: %s. Trusted: %s",
            _peer(raw),
            _reason(error),
            presented,
            ", ".join(self._trust.thumbprints) or "none",
        )


class _Waiting(asyncio.Protocol):
    """Holds what arrives between the end of the handshake and the HTTP protocol taking over.

    A TLS 1.3 client sends its request right behind its Finished message, so the request can
    be decrypted before `start_tls` has returned to us.
    """

    def __init__(self) -> None:
        self._received: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self._received.append(data)

    def eof_received(self) -> None:
        self._eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)

    def replay_into(self, protocol: Any) -> None:
        for data in self._received:
            protocol.data_received(data)
        if self._eof:
            protocol.eof_received()
        if self._lost is not None:
            protocol.connection_lost(self._lost[0])


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "an unknown peer"


def _no_certificate(error: BaseException) -> bool:
    return "certificate required" in str(error).lower()


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its certificate is not trusted ({error.verify_message})"
    if isinstance(error, TimeoutError):
        return f"the handshake took longer than {HANDSHAKE_TIMEOUT:g} s"
    return str(error) or type(error).__name__
