"""Connectivity checks in the spirit of TentaclePing, built into the product.

Two directions: from the manager to a listening agent (is it there, is it the agent we trust,
does it accept us), and from the agent's machine to an Octopus Server (can this machine reach
the server, through the configured proxy, and is the certificate the one to pin). Each
network step is its own stage, so a failure names the step that broke: a name that does not
resolve, a port nobody listens on, a proxy that wants a password, a certificate that is not
the expected one.

The server check runs in the calling process, as the calling user; an agent service running
as another account may see other proxy variables.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from tentacle_manager.client.agent_client import AgentRequestError, HttpsAgent
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.client.tls import AgentIdentityError, AgentRefusedError
from tentacle_manager.diagnostics import network
from tentacle_manager.diagnostics.http_proxy import ProxyRoute, open_tunnel, route_for
from tentacle_manager.diagnostics.network import Connection, PeerCertificate, authority
from tentacle_manager.diagnostics.stages import (
    CheckReport,
    NotApplicable,
    Passed,
    Stage,
    StageFailure,
    StageListener,
    ignore_stage,
    run_stages,
)
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.tentacle_config import ProxyKind

DEFAULT_AGENT_PORT = 10933
SERVER_URL_RULE = "must be an https:// URL such as https://octopus.example:10943"


@dataclass(frozen=True)
class StageTimeouts:
    """Seconds each kind of stage may take before it is reported as hanging."""

    resolve: float = 5.0
    connect: float = 10.0
    handshake: float = 10.0
    request: float = 30.0


class _Road:
    """The connection as it is built, stage by stage: addresses, a socket, maybe a tunnel,
    then TLS; each stage uses what the one before left."""

    def __init__(self, host: str, port: int, who: str) -> None:
        self.host = host
        self.port = port
        self.who = who
        self.addresses: list[str] = []
        self.connection: Connection | None = None
        self.certificate: PeerCertificate | None = None

    def resolve_stage(self, title: str, timeout: float) -> Stage:
        async def body() -> Passed:
            self.addresses = await network.resolve(self.host, self.port)
            return Passed(", ".join(self.addresses), {"addresses": ", ".join(self.addresses)})

        def timed_out(seconds: float) -> StageFailure:
            return StageFailure(
                f"the name {self.host} could not be resolved within {seconds:g} s",
                "Check the DNS servers this machine uses (/etc/resolv.conf on Linux).",
            )

        return Stage("resolve", title, timeout, body, timed_out)

    def connect_stage(self, title: str, timeout: float) -> Stage:
        async def body() -> Passed:
            self.connection, address = await network.connect(self.addresses, self.port, self.who)
            return Passed(f"connected to {authority(address, self.port)}", {"address": address})

        def timed_out(seconds: float) -> StageFailure:
            return network.no_answer(self.host, self.port, self.who, seconds)

        return Stage("connect", title, timeout, body, timed_out)

    def tunnel_stage(self, host: str, port: int, route: ProxyRoute, timeout: float) -> Stage:
        target = authority(host, port)

        async def body() -> Passed:
            assert self.connection is not None
            status = await open_tunnel(self.connection, host, port, route)
            return Passed(f"the proxy answered {status!r}", {"proxy": route.describe()})

        def timed_out(seconds: float) -> StageFailure:
            return StageFailure(
                f"the {route.describe()} did not answer CONNECT {target} within {seconds:g} s",
                "The proxy may itself be waiting on the server; look in the proxy's log.",
            )

        return Stage(
            "tunnel", f"Open a tunnel to {target} through the proxy", timeout, body, timed_out
        )

    def handshake_stage(self, host: str, port: int, who: str, timeout: float) -> Stage:
        where = authority(host, port)

        async def body() -> Passed:
            assert self.connection is not None
            self.certificate = await network.handshake(self.connection, host, where, who)
            return self.certificate.passed()

        def timed_out(seconds: float) -> StageFailure:
            return StageFailure(
                f"{where} accepted the connection but did not complete a TLS handshake within "
                f"{seconds:g} s",
                f"Check that the port is {who}'s TLS port, and that nothing in between holds "
                "the connection.",
            )

        return Stage("handshake", f"TLS handshake with {where}", timeout, body, timed_out)

    def thumbprint_stage(self, title: str, expected: str | None, remedy: str) -> Stage:
        async def body() -> Passed | NotApplicable:
            assert self.certificate is not None
            if expected is None:
                return NotApplicable("no thumbprint was given, so the certificate is not pinned")
            return network.compare_thumbprints(self.certificate, expected, remedy)

        return Stage("thumbprint", title, 1.0, body)

    async def close(self) -> None:
        await network.close(self.connection)


# --- manager -> agent --------------------------------------------------------------------------


async def check_agent(
    agent: HttpsAgent,
    *,
    timeouts: StageTimeouts = StageTimeouts(),
    on_stage: StageListener = ignore_stage,
) -> CheckReport:
    """Resolve, connect, handshake, compare the agent's thumbprint, then call its health API
    with this client's certificate."""
    parts = urlsplit(agent.address)
    host, port = parts.hostname or "", parts.port or DEFAULT_AGENT_PORT
    road = _Road(host, port, "the agent")

    async def health() -> Passed:
        try:
            facts = await agent.health()
        except (AgentRefusedError, AgentIdentityError) as error:
            raise StageFailure(
                str(error),
                "Trust this client's certificate on the agent (tentacle configure --trust=...), "
                "or connect with the agent's current thumbprint.",
            ) from None
        except (AgentUnavailableError, AgentRequestError) as error:
            raise StageFailure(
                str(error),
                "Look in the agent's log (<home>/Logs/OctopusTentacle.txt) for why it did not "
                "answer.",
            ) from None
        accepting = "accepts scripts" if facts.accepting_scripts else "does NOT accept scripts"
        return Passed(
            f"agent {facts.version}, instance {facts.instance}, pid {facts.pid}, {accepting}, "
            f"{facts.scripts_running} running",
            {"version": facts.version, "instance": facts.instance, "pid": str(facts.pid)},
        )

    def health_timed_out(seconds: float) -> StageFailure:
        return StageFailure(
            f"the agent did not answer the health call within {seconds:g} s",
            "The agent may be overloaded or hung; look in its log, or restart it.",
        )

    stages = [
        road.resolve_stage(f"Resolve {host}", timeouts.resolve),
        road.connect_stage(f"Connect to {authority(host, port)}", timeouts.connect),
        road.handshake_stage(host, port, "the agent", timeouts.handshake),
        road.thumbprint_stage(
            "Compare the agent's certificate with the expected thumbprint",
            agent.thumbprint,
            "Check the thumbprint with `tentacle show-thumbprint` on the agent's machine; if "
            "its certificate was replaced on purpose, connect with the new thumbprint.",
        ),
        Stage(
            "health",
            "Authenticated call to the agent (health)",
            timeouts.request,
            health,
            health_timed_out,
        ),
    ]
    try:
        return await run_stages(agent.address, stages, on_stage)
    finally:
        await road.close()


# --- agent's machine -> Octopus Server ---------------------------------------------------------


def server_address(url: str) -> tuple[str, int]:
    """The host and port of an Octopus Server URL; ValueError (with the rule) when it is not
    one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(SERVER_URL_RULE) from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(SERVER_URL_RULE)
    return parts.hostname, port or 443


def server_route(
    instance: Instance, url: str, kind: ProxyKind = ProxyKind.POLLING
) -> ProxyRoute | None:
    """The proxy the instance's settings of `kind` send traffic to `url` through."""
    host, _ = server_address(url)
    return route_for(instance.config().proxy(kind), kind, host)


async def check_server(
    url: str,
    *,
    expected_thumbprint: str | None = None,
    proxy: ProxyRoute | None = None,
    timeouts: StageTimeouts = StageTimeouts(),
    on_stage: StageListener = ignore_stage,
) -> CheckReport:
    """Resolve, connect (to the proxy and through a CONNECT tunnel when there is one),
    handshake and report the server's certificate, pin its thumbprint when one is given, and
    make one HTTPS request the way real traffic goes."""
    host, port = server_address(url)
    who = "the Octopus Server"
    if proxy is None:
        road = _Road(host, port, who)
        stages = [
            road.resolve_stage(f"Resolve {host}", timeouts.resolve),
            road.connect_stage(f"Connect to {authority(host, port)}", timeouts.connect),
        ]
    else:
        road = _Road(proxy.host, proxy.port, f"the proxy {authority(proxy.host, proxy.port)}")
        stages = [
            road.resolve_stage(f"Resolve the proxy {proxy.host}", timeouts.resolve),
            road.connect_stage(
                f"Connect to the proxy {authority(proxy.host, proxy.port)}", timeouts.connect
            ),
            road.tunnel_stage(host, port, proxy, timeouts.connect),
        ]

    async def request() -> Passed:
        assert road.certificate is not None
        return await _request(url, road.certificate, proxy)

    def request_timed_out(seconds: float) -> StageFailure:
        return StageFailure(
            f"the server did not answer an HTTPS request within {seconds:g} s",
            "Check the URL: it should be the server's polling or web address.",
        )

    stages += [
        road.handshake_stage(host, port, who, timeouts.handshake),
        road.thumbprint_stage(
            "Pin the server's certificate thumbprint",
            expected_thumbprint,
            "Compare with the thumbprint shown in the Octopus Server's configuration "
            "(Configuration > Thumbprints); a TLS-inspecting proxy or firewall replaces "
            "certificates, and Tentacle must bypass it.",
        ),
        Stage("request", f"HTTPS request to {url}", timeouts.request, request, request_timed_out),
    ]
    try:
        return await run_stages(url, stages, on_stage)
    finally:
        await road.close()


async def _request(url: str, certificate: PeerCertificate, proxy: ProxyRoute | None) -> Passed:
    """One GET through aiohttp (and its proxy support), trusting only the certificate the
    handshake stage saw, so the answer comes from the same server. OpenSSL still checks that
    certificate's dates, so an expired one fails here."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=certificate.der)
    credentials = proxy.authorization() if proxy is not None else None
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url,
                proxy=proxy.url if proxy is not None else None,
                proxy_headers={"Proxy-Authorization": credentials} if credentials else None,
                ssl=context,
                allow_redirects=False,
            ) as response,
        ):
            server = response.headers.get("Server")
            answer = f"HTTP {response.status} {response.reason or ''}".strip()
            return Passed(
                answer + (f" from {server}" if server else ""), {"status": str(response.status)}
            )
    except aiohttp.ClientError as error:
        raise StageFailure(
            f"the HTTPS request to {url} failed ({error})",
            "The connection itself works (see the stages above); check the URL and the "
            "server's log.",
        ) from None
