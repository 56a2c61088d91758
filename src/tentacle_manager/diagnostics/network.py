"""The network steps of a connectivity check, with their failures put in plain words.

Each step is one thing that can go wrong on its own (a name, a route, a listener, TLS), so
each is done separately and its failure names the host, the port and the likely cause. TLS
is Python's own (`ssl` through asyncio); nothing here parses TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from tentacle_manager.diagnostics.stages import Passed, StageFailure
from tentacle_manager.instances.certificates import thumbprint_of_der

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the order the system prefers them."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise _resolve_failure(host, error) from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _resolve_failure(host: str, error: socket.gaierror) -> StageFailure:
    remedy = (
        f"Check the spelling of {host}, the DNS servers this machine uses (/etc/resolv.conf "
        "on Linux), or give the address in the hosts file."
    )
    if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return StageFailure(f"the name {host} does not resolve", remedy)
    if error.errno == socket.EAI_AGAIN:
        return StageFailure(
            f"the name {host} could not be resolved: no DNS server answered in time", remedy
        )
    return StageFailure(f"the name {host} could not be resolved ({error.strerror})", remedy)


async def connect(addresses: list[str], port: int, who: str) -> tuple[Connection, str]:
    """A TCP connection to the first of `addresses` that accepts one, and that address."""
    failures: list[StageFailure] = []
    for address in addresses:
        try:
            return await asyncio.open_connection(address, port), address
        except OSError as error:
            failures.append(_connect_failure(address, port, who, error))
    if not failures:
        raise StageFailure(f"{who} has no address to connect to")
    raise failures[0]  # the address the system prefers; the others usually fail alike


def _connect_failure(address: str, port: int, who: str, error: OSError) -> StageFailure:
    where = authority(address, port)
    if isinstance(error, ConnectionRefusedError):
        return StageFailure(
            f"nothing is listening on {where} (connection refused)",
            f"Check that {who} is running and listens on port {port}, and that no firewall "
            "rejects the connection.",
        )
    if error.errno in _UNREACHABLE:
        return StageFailure(
            f"there is no route to {address} ({error.strerror})",
            f"Check this machine's network settings and the route to {who}.",
        )
    return StageFailure(
        f"cannot connect to {where}: {error.strerror or error}",
        f"Check that {who} is running and reachable from this machine.",
    )


def no_answer(host: str, port: int, who: str, seconds: float) -> StageFailure:
    """What a connection that neither succeeds nor fails in time usually means."""
    return StageFailure(
        f"no answer from {authority(host, port)} within {seconds:g} s",
        f"A firewall is probably dropping the packets, or the address is not {who}'s; "
        "check the firewalls on the way.",
    )


@dataclass(frozen=True)
class PeerCertificate:
    """The certificate the other end presented, as an admin compares it with a console."""

    der: bytes
    thumbprint: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    tls_version: str

    @classmethod
    def of(cls, der: bytes, tls_version: str) -> PeerCertificate:
        certificate = x509.load_der_x509_certificate(der)
        return cls(
            der=der,
            thumbprint=thumbprint_of_der(der),
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            tls_version=tls_version,
        )

    @property
    def expired(self) -> bool:
        return self.not_after < datetime.now(UTC)

    def passed(self) -> Passed:
        validity = (
            f"EXPIRED on {self.not_after:%Y-%m-%d}"
            if self.expired
            else f"valid until {self.not_after:%Y-%m-%d}"
        )
        return Passed(
            f"{self.tls_version}; certificate {self.subject}, thumbprint {self.thumbprint}, "
            f"{validity}",
            {
                "thumbprint": self.thumbprint,
                "subject": self.subject,
                "issuer": self.issuer,
                "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
                "tls_version": self.tls_version,
            },
        )


async def handshake(
    connection: Connection, server_name: str, where: str, who: str
) -> PeerCertificate:
    """Upgrade the connection to TLS and take the certificate presented, trusting nothing yet:
    the identity is judged by thumbprint in the next stage, as Tentacle does."""
    _, writer = connection
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = None if _is_address(server_name) else server_name
    try:
        await writer.start_tls(context, server_hostname=sni)
    except ssl.SSLError as error:
        raise _handshake_failure(where, who, error) from None
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        raise StageFailure(
            f"{where} closed the connection during the TLS handshake ({error})",
            f"Check that {who} speaks TLS on this port, and that no proxy or TLS-inspecting "
            "firewall in between interferes.",
        ) from None
    tls = writer.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        raise StageFailure(f"{where} completed the TLS handshake without a certificate")
    return PeerCertificate.of(der, tls.version() or "TLS")


def _handshake_failure(where: str, who: str, error: ssl.SSLError) -> StageFailure:
    if error.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        detail = f"{where} does not speak TLS (it answered in plain text)"
    else:
        detail = f"the TLS handshake with {where} failed ({error.reason or error})"
    return StageFailure(
        detail,
        f"Check that the port is {who}'s TLS port (not plain HTTP), and that no proxy or "
        "TLS-inspecting firewall in between interferes.",
    )


def compare_thumbprints(presented: PeerCertificate, expected: str, remedy: str) -> Passed:
    wanted = expected.strip().upper()
    if presented.thumbprint != wanted:
        raise StageFailure(
            f"the certificate presented has thumbprint {presented.thumbprint}, expected {wanted}",
            remedy,
        )
    return Passed(f"thumbprint {wanted} as expected", {"thumbprint": wanted})


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


async def close(connection: Connection | None) -> None:
    if connection is None:
        return
    _, writer = connection
    writer.close()
    # The peer may have gone first; then there is nothing left to release.
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
