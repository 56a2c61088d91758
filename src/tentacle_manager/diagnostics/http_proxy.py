"""The proxy a connection to the Octopus Server goes through, and the tunnel through it.

The route comes from the instance's proxy settings as Tentacle reads them: a custom proxy
host, or the system's proxy (on Linux the `https_proxy` variables, honouring `no_proxy`), or
none. The tunnel is an HTTP CONNECT written here rather than left to an HTTP library, because
a library reports a refused CONNECT, a wrong password and a server that cannot be reached all
as one "proxy error"; the status line of the proxy's answer tells them apart. The check's
final request does go through aiohttp's own proxy support, as real traffic would.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from tentacle_manager.diagnostics.network import Connection, authority
from tentacle_manager.diagnostics.stages import StageFailure
from tentacle_manager.instances.tentacle_config import ProxyKind, ProxySettings

MAX_HEADER_LINES = 100

# The verb that sets each kind of proxy, for remedies.
_VERBS = {ProxyKind.HTTP: "proxy", ProxyKind.POLLING: "polling-proxy"}


@dataclass(frozen=True)
class ProxyRoute:
    host: str
    port: int
    source: str  # where the route came from: a config key prefix or an environment variable
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verb: str = "proxy"  # the `tentacle` verb that changes this route

    @property
    def url(self) -> str:
        return f"http://{authority(self.host, self.port)}"

    def authorization(self) -> str | None:
        """The Proxy-Authorization value (Basic, as Tentacle sends), or None without a user."""
        if not self.username:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def describe(self) -> str:
        user = f" as user {self.username}" if self.username else ""
        return f"proxy {authority(self.host, self.port)} ({self.source}){user}"


def route_for(settings: ProxySettings, kind: ProxyKind, target_host: str) -> ProxyRoute | None:
    """The proxy that `settings` send traffic to `target_host` through, or None for direct."""
    verb = _VERBS[kind]
    if settings.host:
        return ProxyRoute(
            settings.host.strip("[]"),
            settings.port,
            kind.value,
            settings.username,
            settings.password,
            verb,
        )
    if not settings.use_default_proxy:
        return None
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get("https") or proxies.get("all")
    if not chosen or urllib.request.proxy_bypass_environment(target_host, proxies):
        return None
    parts = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
    if not parts.hostname:
        return None
    username = unquote(parts.username) if parts.username else settings.username
    password = unquote(parts.password) if parts.password else settings.password
    return ProxyRoute(parts.hostname, parts.port or 80, "https_proxy", username, password, verb)


async def open_tunnel(connection: Connection, host: str, port: int, route: ProxyRoute) -> str:
    """Ask the proxy on `connection` for a tunnel to host:port; returns its status line."""
    reader, writer = connection
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    credentials = route.authorization()
    if credentials:
        lines.append(f"Proxy-Authorization: {credentials}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    status = (await reader.readline()).decode("latin-1").strip()
    if not status:
        raise StageFailure(
            f"the {route.describe()} closed the connection without answering CONNECT {target}",
            "Check that this address is an HTTP proxy, and look in the proxy's log.",
        )
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise StageFailure(
            f"the {route.describe()} did not answer in HTTP ({status[:60]!r})",
            "Check that this address is an HTTP proxy and not something else.",
        )
    await _skip_headers(reader)
    code = int(parts[1])
    if code // 100 != 2:
        raise _refusal(code, status, target, route)
    return status


async def _skip_headers(reader: asyncio.StreamReader) -> None:
    for _ in range(MAX_HEADER_LINES):
        if not (await reader.readline()).strip():
            return
    raise StageFailure("the proxy's answer to CONNECT has no end to its headers")


def _refusal(code: int, status: str, target: str, route: ProxyRoute) -> StageFailure:
    answer = status.split(" ", 1)[1]
    if code == 407:
        credentials = (
            f"tentacle {route.verb} --proxyUsername=<user> --proxyPassword=<password> "
            "(then restart the agent)"
        )
        if route.username:
            return StageFailure(
                f"the {route.describe()} rejected the credentials of {route.username} ({answer})",
                f"Set the right password with {credentials}.",
            )
        return StageFailure(
            f"the {route.describe()} requires credentials ({answer})",
            f"Give them with {credentials}.",
        )
    if code == 403:
        return StageFailure(
            f"the {route.describe()} refuses tunnels to {target} ({answer})",
            f"Ask the proxy's administrators to allow CONNECT to {target}.",
        )
    if code in (502, 503, 504):
        return StageFailure(
            f"the {route.describe()} could not reach {target} ({answer})",
            "The proxy cannot resolve or reach the server: check the URL, and the proxy's "
            "own access to the server's network.",
        )
    return StageFailure(
        f"the {route.describe()} answered {answer} to CONNECT {target}",
        "Look in the proxy's log for why it refused the tunnel.",
    )
