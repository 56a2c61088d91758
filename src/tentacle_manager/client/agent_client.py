"""The HTTPS client of one agent: ScriptServiceV2 verbs plus the admin verbs, over mutual TLS.

Failures are sorted by what the caller can do about them: `AgentUnavailableError` (retry
later: no route, agent restarting, connection dropped), `AgentRefusedError` (fix the trust:
the agent does not accept this client's certificate), `AgentIdentityError` (stop: the agent
is not the one expected) and `AgentRequestError` (fix the request; names each field).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.client.tls import AgentRefusedError, ClientIdentity, connect_context
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    AgentHealth,
    ApiError,
    CancelScriptCommand,
    CapabilitiesResponse,
    CompleteScriptCommand,
    Contract,
    ContractT,
    LogLevelSetting,
    MutexEvent,
    MutexSnapshot,
    ScriptList,
    ScriptProcessTree,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptTicket,
    StartScriptCommand,
    parse,
)

DEFAULT_TIMEOUT = timedelta(seconds=60)


class AgentRequestError(Exception):
    """The agent answered 4xx: the request was wrong, and retrying it will not help."""

    def __init__(self, status: int, error: ApiError) -> None:
        self.status = status
        self.error = error
        problems = "; ".join(f"{field}: {rule}" for field, rule in error.problems.items())
        detail = f" ({problems})" if problems else ""
        remedy = f" {error.remedy}" if error.remedy else ""
        super().__init__(
            f"The agent refused the request ({status}): {error.error}{detail}.{remedy}"
        )


class HttpsAgent:
    """Speaks `ScriptServiceClient` (and the admin verbs) to one agent. Use as a context manager
    or call `close()`; the connection to the agent is pinned on first use."""

    def __init__(
        self,
        address: str,
        identity: ClientIdentity,
        thumbprint: str,
        timeout: timedelta = DEFAULT_TIMEOUT,
    ) -> None:
        parts = urlsplit(address)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"address: must be https://host:port, not {address!r}")
        self.address = address.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 10933
        self._identity = identity
        self._thumbprint = thumbprint
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._connecting = asyncio.Lock()

    @property
    def thumbprint(self) -> str:
        """The thumbprint the agent's certificate must have."""
        return self._thumbprint

    async def __aenter__(self) -> HttpsAgent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- ScriptServiceV2 -----------------------------------------------------------------------

    async def capabilities(self) -> CapabilitiesResponse:
        return await self._call("GET", "/api/capabilities", None, CapabilitiesResponse)

    async def start_script(self, command: StartScriptCommand) -> ScriptStatusResponse:
        wait = command.duration_to_wait_for_script_to_finish or timedelta(0)
        return await self._call(
            "POST", "/api/scripts/start", command, ScriptStatusResponse, extra_time=wait
        )

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse:
        return await self._call("POST", "/api/scripts/status", request, ScriptStatusResponse)

    async def cancel_script(self, command: CancelScriptCommand) -> ScriptStatusResponse:
        return await self._call("POST", "/api/scripts/cancel", command, ScriptStatusResponse)

    async def abandon_script(self, command: AbandonScriptCommand) -> ScriptStatusResponse:
        return await self._call("POST", "/api/scripts/abandon", command, ScriptStatusResponse)

    async def complete_script(self, command: CompleteScriptCommand) -> None:
        await self._call("POST", "/api/scripts/complete", command, None)

    # --- admin ---------------------------------------------------------------------------------

    async def list_scripts(self) -> ScriptList:
        return await self._call("GET", "/api/admin/scripts", None, ScriptList)

    async def script_processes(self, script: ScriptTicket) -> ScriptProcessTree:
        path = f"/api/admin/scripts/{script.task_id}/processes"
        return await self._call("GET", path, None, ScriptProcessTree)

    async def retry_quarantine(self) -> ScriptList:
        return await self._call("POST", "/api/admin/quarantine/retry", None, ScriptList)

    async def mutexes(self) -> MutexSnapshot:
        return await self._call("GET", "/api/admin/mutexes", None, MutexSnapshot)

    async def health(self) -> AgentHealth:
        return await self._call("GET", "/api/admin/health", None, AgentHealth)

    async def log_level(self) -> str:
        return (await self._call("GET", "/api/admin/log-level", None, LogLevelSetting)).level

    async def set_log_level(self, level: str) -> str:
        setting = LogLevelSetting(level=level)
        return (await self._call("PUT", "/api/admin/log-level", setting, LogLevelSetting)).level

    async def mutex_events(self) -> AsyncIterator[MutexSnapshot | MutexEvent]:
        """The current snapshot, then each change as it happens, until the caller stops."""
        session = await self._connected()
        try:
            async with session.get(
                self.address + "/api/admin/mutexes/events",
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as response:
                await _raise_for_status(response)
                first = True
                async for line in response.content:
                    if not line.strip():
                        continue
                    yield parse(MutexSnapshot if first else MutexEvent, line)
                    first = False
        except (aiohttp.ClientError, OSError) as error:
            raise self._unavailable(error) from error

    # --- plumbing ------------------------------------------------------------------------------

    async def _connected(self) -> aiohttp.ClientSession:
        async with self._connecting:
            if self._session is None:
                context = await connect_context(
                    self._host, self._port, self._identity, self._thumbprint
                )
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=context, limit=0),
                    timeout=aiohttp.ClientTimeout(total=self._timeout.total_seconds()),
                )
            return self._session

    async def _call(
        self,
        method: str,
        path: str,
        body: Contract | None,
        model: type[ContractT] | None,
        extra_time: timedelta = timedelta(0),
    ) -> Any:
        session = await self._connected()
        timeout = aiohttp.ClientTimeout(total=(self._timeout + extra_time).total_seconds())
        data = body.to_json() if body is not None else None
        try:
            async with session.request(
                method,
                self.address + path,
                data=data,
                headers={"Content-Type": "application/json"} if data is not None else None,
                timeout=timeout,
            ) as response:
                await _raise_for_status(response)
                raw = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise self._unavailable(error) from error
        return parse(model, raw) if model is not None else None

    def _unavailable(self, error: BaseException) -> AgentUnavailableError:
        """A dropped connection may mean the agent restarted with other trust or another
        certificate, so the next call connects afresh and re-checks both."""
        session, self._session = self._session, None
        if session is not None:
            asyncio.get_running_loop().create_task(session.close())
        return AgentUnavailableError(f"The agent at {self.address} is unavailable: {error}")


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    raw = await response.read()
    try:
        error = parse(ApiError, raw)
    except ValueError:
        error = ApiError(error=raw.decode("utf-8", "replace")[:200] or response.reason or "")
    if response.status == 401:
        raise AgentRefusedError(f"The agent refused this client: {error.error} {error.remedy}")
    if response.status >= 500:
        raise AgentUnavailableError(f"The agent failed ({response.status}): {error.error}")
    raise AgentRequestError(response.status, error)
