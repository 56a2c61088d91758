"""The client's side of mutual TLS: present our certificate, accept only the expected agent.

Callers know the agent by its Tentacle thumbprint (SHA-1 of its certificate). Python's TLS
cannot pin a SHA-1 thumbprint during the handshake, so the client first fetches the agent's
certificate with a handshake that sends nothing else, checks its thumbprint, and then trusts
exactly that certificate as the only anchor for every real connection. An impostor can copy
the certificate but not its private key, so it fails the real handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.instances.certificates import thumbprint, thumbprint_of_der

PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientIdentity:
    """This client's certificate and its encrypted private key, as files."""

    certificate: Path
    private_key: Path
    passphrase: bytes

    @property
    def thumbprint(self) -> str:
        return thumbprint(x509.load_pem_x509_certificate(self.certificate.read_bytes()))


class AgentIdentityError(ConnectionError):
    """The agent presented a certificate other than the one the caller expects."""

    def __init__(self, address: str, presented: str, expected: str) -> None:
        self.presented = presented
        self.expected = expected
        super().__init__(
            f"The agent at {address} presented certificate {presented}, but {expected} was "
            "expected. Check the thumbprint with `tentacle show-thumbprint` on the agent's "
            "machine; if the agent's certificate was replaced on purpose, update the thumbprint "
            "you connect with."
        )


class AgentRefusedError(ConnectionError):
    """The agent does not accept this client's certificate."""


async def fetch_agent_certificate(host: str, port: int) -> bytes:
    """The DER certificate the agent at host:port presents, without sending it anything."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await _connect(host, port, context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return der


def pinned_context(identity: ClientIdentity, agent_certificate: bytes) -> ssl.SSLContext:
    """A context that presents our certificate and trusts only the given agent certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # The agent is identified by its certificate, not by a host name: agents are reached by
    # IP address, by names that change, or through port forwards.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # see agent.api.tls
    context.load_verify_locations(cadata=agent_certificate)
    context.load_cert_chain(identity.certificate, identity.private_key, identity.passphrase)
    return context


async def connect_context(
    host: str, port: int, identity: ClientIdentity, expected_thumbprint: str
) -> ssl.SSLContext:
    """Resolve the expected thumbprint to the agent's certificate and build the pinned context."""
    der = await fetch_agent_certificate(host, port)
    presented = thumbprint_of_der(der)
    if presented != expected_thumbprint.upper():
        raise AgentIdentityError(f"{host}:{port}", presented, expected_thumbprint.upper())
    # Decrypting the private key takes a good part of a second of CPU on a small machine; in a
    # thread, the manager's window stays responsive while it connects.
    context = await asyncio.to_thread(pinned_context, identity, der)
    await _check_accepted(host, port, context, identity)
    return context


async def _check_accepted(
    host: str, port: int, context: ssl.SSLContext, identity: ClientIdentity
) -> None:
    """Make one request with our certificate, so a refusal is reported as one.

    In TLS 1.3 the agent judges the client's certificate after the client considers the
    handshake done; its verdict arrives as an alert on the first read, which an HTTP library
    would report as a mere disconnect.
    """
    reader, writer = await _connect(host, port, context)
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(PROBE_TIMEOUT):
            answer = await reader.read()
    except ssl.SSLError as error:
        raise _refused(host, port, identity, error.reason or str(error)) from error
    except (OSError, TimeoutError) as error:
        raise _unreachable(host, port, error) from error
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/"):
        # asyncio reports the agent's alert as a plain end of stream; the agent answers this
        # request to anyone else, so silence means our certificate was refused.
        raise _refused(host, port, identity, "the connection was closed after the handshake")


async def _connect(
    host: str, port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):  # not wait_for: on 3.11 it can swallow a
            return await asyncio.open_connection(host, port, ssl=context)  # cancellation
    except (OSError, TimeoutError) as error:
        raise _unreachable(host, port, error) from error


def _unreachable(host: str, port: int, error: BaseException) -> AgentUnavailableError:
    return AgentUnavailableError(f"Cannot reach the agent at {host}:{port}: {error}")


def _refused(host: str, port: int, identity: ClientIdentity, why: str) -> AgentRefusedError:
    return AgentRefusedError(
        f"The agent at {host}:{port} refused this client's certificate ({why}). Trust it on "
        f"the agent: tentacle configure --trust={identity.thumbprint}"
    )
