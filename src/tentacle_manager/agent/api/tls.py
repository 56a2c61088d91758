"""The agent's TLS context, and how it learns which certificate a refused client presented.

The context asks every client for a certificate but lets one connect without (CERT_OPTIONAL):
a browser or a health check then gets the friendly page, while every API route refuses a
caller with no trusted certificate. A presented certificate must verify against the trust
list, so an untrusted or expired one fails the handshake inside OpenSSL.

OpenSSL does not hand a refused certificate back to Python, yet an admin debugging a refused
orchestrator needs its thumbprint. The context's message callback sees the client's
Certificate handshake message (TLS 1.3, decrypted), so it keeps the first certificate on the
connection's SSLObject, where the gate finds it after a failed handshake. The callback is a
CPython hook without a public name (`SSLContext._msg_callback`); where it is missing, refusals
are still logged, with the presented thumbprint shown as unknown.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tentacle_manager.agent.api.trust import TrustList

log = logging.getLogger(__name__)

_PRESENTED = "_tentacle_presented_certificate"
_HANDSHAKE = 22


@dataclass(frozen=True)
class ServerIdentity:
    """The agent's own certificate and its encrypted private key, as files in the home."""

    certificate: Path
    private_key: Path
    passphrase: bytes


def server_context(identity: ServerIdentity, trust: TrustList) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Both ends are ours, so there is no older peer to accommodate; 1.3 also encrypts the
    # client's certificate on the wire.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(identity.certificate, identity.private_key, identity.passphrase)
    context.verify_mode = ssl.CERT_OPTIONAL
    # Every Tentacle certificate has the same subject and no key identifiers, so OpenSSL
    # cannot tell the trusted ones apart by name; with a partial chain allowed it accepts a
    # client certificate that is itself in the trust store, which is exactly pinning.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if len(trust):
        context.load_verify_locations(cadata=trust.anchors_pem())
    try:
        context._msg_callback = _keep_presented_certificate  # type: ignore[attr-defined]
    except AttributeError:
        log.debug("This Python cannot report the thumbprints of refused client certificates")
    return context


def presented_certificate(ssl_object: Any) -> bytes | None:
    """The first certificate the client sent on this connection, if it sent one."""
    return getattr(ssl_object, _PRESENTED, None)


def _keep_presented_certificate(
    conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes
) -> None:
    if (
        direction != "read"
        or content_type != _HANDSHAKE
        or msg_type != ssl._TLSMessageType.CERTIFICATE
    ):  # type: ignore[attr-defined]
        return
    der = _first_certificate(data)
    if der is not None:
        setattr(conn, _PRESENTED, der)


def _first_certificate(message: bytes) -> bytes | None:
    """The first entry of a TLS 1.3 Certificate message (RFC 8446, section 4.4.2).

    Layout: 4-byte handshake header, 1-byte context length and context, 3-byte list length,
    then entries of a 3-byte length and the DER certificate (each followed by extensions).
    """
    try:
        at = 4 + 1 + message[4]
        listed = int.from_bytes(message[at : at + 3], "big")
        if listed == 0:
            return None
        at += 3
        size = int.from_bytes(message[at : at + 3], "big")
        der = message[at + 3 : at + 3 + size]
        return der if len(der) == size else None
    except IndexError:
        return None
