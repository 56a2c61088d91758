"""Is the listen port free? Found by binding it exactly as the agent will, then letting go.

A bind is the only honest test: a scan of open connections misses sockets of other users and
namespaces, and "connection refused" says nothing about addresses other than loopback. When the
port is taken, psutil names the holder where this user may see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

import psutil

from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    describe_error,
)

_CHANGE_PORT = "choose another port with `tentacle configure --port=<port>`"
_UNSEEN = "another program (run as administrator to see which)"


def port_check() -> Check:
    return Check("listen-port", "Listen port", _port)


async def _port(context: CheckContext) -> CheckResult:
    port = context.listen_port
    if port is None:
        return CheckResult(
            CheckState.PASSED,
            "Not applicable: this instance polls the server and listens on no port.",
        )
    where = f"port {port} on {context.listen_address or 'every address'}"
    try:
        await _bind(context.listen_address, port)
    except OSError as error:
        return await _refused(where, port, error)
    return CheckResult(CheckState.PASSED, f"{where.capitalize()} is free.")


async def _bind(address: str, port: int) -> None:
    """Listen as agent/api/server.py does (same host, family and reuse option), then close."""
    server = await asyncio.get_running_loop().create_server(
        asyncio.Protocol,
        host=address or None,
        port=port,
        family=socket.AF_UNSPEC,
        reuse_address=True,
    )
    server.close()
    await server.wait_closed()


async def _refused(where: str, port: int, error: OSError) -> CheckResult:
    if error.errno == errno.EADDRINUSE:
        holder = await asyncio.to_thread(_holders, port)
        return CheckResult(
            CheckState.FAILED,
            f"{where.capitalize()} is already in use by {holder}.",
            f"Stop that program, or {_CHANGE_PORT}.",
        )
    if error.errno == errno.EACCES:
        return CheckResult(
            CheckState.FAILED,
            f"This user may not listen on {where}: ports below 1024 need administrator rights.",
            f"Run as root, or {_CHANGE_PORT} (the default is 10933).",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return CheckResult(
            CheckState.FAILED,
            f"Cannot listen on {where}: the address is not one of this machine's.",
            "Choose an address of this machine with `tentacle configure --listenIpAddress=`, "
            "or leave it empty to listen on every address.",
        )
    return CheckResult(
        CheckState.FAILED,
        f"Cannot listen on {where}: {describe_error(error)}.",
        f"Check the address, or {_CHANGE_PORT}.",
    )


def _holders(port: int) -> str:
    """Who listens on `port`, e.g. "python3 (pid 4242)", as far as this user can tell."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return _UNSEEN
    pids = sorted(
        {
            connection.pid
            for connection in connections
            if connection.laddr
            and connection.laddr.port == port
            and connection.status == psutil.CONN_LISTEN
        },
        key=lambda pid: pid or 0,
    )
    names = [_describe(pid) for pid in pids]
    return ", ".join(names) or _UNSEEN


def _describe(pid: int | None) -> str:
    if pid is None:
        return "a process of another user"
    name = "?"
    with contextlib.suppress(psutil.Error):
        name = psutil.Process(pid).name()
    return f"{name} (pid {pid})"
