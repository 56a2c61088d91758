"""The manager's link to the selected instance's agent: one HttpsAgent, a health check every
two seconds, and the state of the link in words a user can act on.

Qt-free on purpose (napari's model/view split): views subscribe to status changes, and the
Scripts and Mutexes panels borrow `agent` rather than opening connections of their own.
Subscribers are called on the event loop's thread, which under qasync is the GUI thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tentacle_manager.client.agent_client import AgentRequestError, HttpsAgent
from tentacle_manager.client.local import local_agent
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.client.tls import AgentIdentityError, AgentRefusedError
from tentacle_manager.contracts import AgentHealth
from tentacle_manager.gui import spawn
from tentacle_manager.instances.errors import InstanceError, InstanceNotFoundError
from tentacle_manager.instances.instance import Instance

POLL_INTERVAL = 2.0
HEALTH_TIMEOUT = 5.0


class ConnectionState(StrEnum):
    CHECKING = "checking"
    CONNECTED = "connected"
    AGENT_DOWN = "agent down"
    CERTIFICATE_REFUSED = "certificate refused"
    WRONG_AGENT = "wrong agent"
    NO_INSTANCE = "no instance"
    INSTANCE_PROBLEM = "instance problem"  # the config cannot say how to reach the agent


@dataclass(frozen=True)
class ConnectionStatus:
    state: ConnectionState
    message: str
    remedy: str = ""
    detail: str = ""  # the underlying error, for a tooltip or a support request
    health: AgentHealth | None = None


CHECKING = ConnectionStatus(ConnectionState.CHECKING, "Connecting to the agent...")
NO_INSTANCE = ConnectionStatus(
    ConnectionState.NO_INSTANCE,
    "No Tentacle instance is selected.",
    "Choose an instance, or create one with `tentacle create-instance`.",
)

Subscriber = Callable[[ConnectionStatus], None]


class AgentConnection:
    """Owns the client of one instance's agent and keeps its status current."""

    def __init__(self, interval: float = POLL_INTERVAL, timeout: float = HEALTH_TIMEOUT) -> None:
        self._interval = interval
        self._timeout = timeout
        self._instance: Instance | None = None
        self._agent: HttpsAgent | None = None
        self._status = NO_INSTANCE
        self._subscribers: list[Subscriber] = []
        self._poller: asyncio.Task[None] | None = None
        self._checking = asyncio.Lock()

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def agent(self) -> HttpsAgent | None:
        """The client, for panels that call the agent; None until the instance is usable."""
        return self._agent

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` on every change of status; returns the way to stop."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def select(self, instance: Instance | None) -> None:
        """Follow another instance: drop the old client, check the new agent at once, and keep
        checking it in the background."""
        await self.close()
        self._instance = instance
        self._publish(NO_INSTANCE if instance is None else CHECKING)
        if instance is not None:
            self._poller = spawn(self._poll(instance))

    async def retry(self) -> ConnectionStatus:
        """Re-read the instance's configuration (its port or certificate may have changed) and
        check now, rather than at the next poll."""
        async with self._checking:
            await self._drop_agent()
        return await self._check()

    async def close(self) -> None:
        """Stop checking and drop the client; `select` starts again."""
        self._instance = None
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait([self._poller])  # a failure was reported when it happened
            self._poller = None
        async with self._checking:  # a Retry in flight still uses the client
            await self._drop_agent()

    async def _poll(self, instance: Instance) -> None:
        while self._instance is instance:
            await self._check()
            await asyncio.sleep(self._interval)

    async def _check(self) -> ConnectionStatus:
        instance = self._instance
        if instance is None:
            return self._publish(NO_INSTANCE)
        async with self._checking:
            status = await self._status_of(instance)
        if self._instance is instance:  # a check that outlived its instance says nothing
            self._publish(status)
        return status

    async def _status_of(self, instance: Instance) -> ConnectionStatus:
        if self._agent is None:
            try:
                loop = asyncio.get_running_loop()
                self._agent = await loop.run_in_executor(None, open_agent, instance)
            except InstanceError as error:
                return ConnectionStatus(
                    ConnectionState.INSTANCE_PROBLEM, error.message, error.remedy or ""
                )
        try:
            # Not wait_for: on 3.11 its inner task can end in an error nobody retrieves when
            # the poll is cancelled just as the call fails.
            async with asyncio.timeout(self._timeout):
                health = await self._agent.health()
        except AgentUnavailableError as error:
            return _agent_down(self._agent, str(error))
        except TimeoutError:
            return _agent_down(self._agent, f"no answer within {self._timeout:g} s")
        except AgentIdentityError as error:
            return _wrong_certificate(self._agent, error)
        except (AgentRefusedError, AgentRequestError) as error:
            return _refused(instance, error)
        return _connected(instance, self._agent, health)

    async def _drop_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.close()

    def _publish(self, status: ConnectionStatus) -> ConnectionStatus:
        if status != self._status:
            self._status = status
            for subscriber in list(self._subscribers):
                subscriber(status)
        return status


def missing_configuration(instance: Instance) -> InstanceNotFoundError | None:
    """The error for an instance whose config file vanished, else None. Tentacle's manager
    silently deletes such a registration (reference 4.2); we flag it and say what to do."""
    path = instance.config_path
    if path.is_file():
        return None
    if instance.name is None:
        return InstanceNotFoundError(
            f"The configuration file {path} is missing.",
            f'Re-create it with `tentacle create-instance --config "{path}"`.',
        )
    name = instance.name
    return InstanceNotFoundError(
        f"The configuration file {path} of instance {name} is missing: it may have been "
        "deleted without removing the instance.",
        f'Re-create it with `tentacle create-instance --instance "{name}" --config "{path}"`, '
        f'or forget the instance with `tentacle delete-instance --instance "{name}"`.',
    )


def open_agent(instance: Instance) -> HttpsAgent:
    """The client of the instance's agent (blocking: reads the config and the secret store).
    A missing config file reads as empty, which would blame a missing certificate instead."""
    missing = missing_configuration(instance)
    if missing is not None:
        raise missing
    return local_agent(instance)


def _agent_down(agent: HttpsAgent, detail: str) -> ConnectionStatus:
    return ConnectionStatus(
        ConnectionState.AGENT_DOWN,
        f"The agent is not answering at {agent.address}.",
        "Start the Tentacle service, then press Retry. If the service is running, its log "
        "in the Logs folder says why the agent is not listening.",
        detail,
    )


def _wrong_certificate(agent: HttpsAgent, error: AgentIdentityError) -> ConnectionStatus:
    return ConnectionStatus(
        ConnectionState.WRONG_AGENT,
        f"Something other than this Tentacle answers at {agent.address}: it presented "
        f"certificate {error.presented}, not this Tentacle's {error.expected}.",
        "Another Tentacle or program may be using the port. Stop it, or give this instance "
        "another port (`tentacle configure --port`), then restart the service and press Retry.",
        str(error),
    )


def _refused(instance: Instance, error: Exception) -> ConnectionStatus:
    return ConnectionStatus(
        ConnectionState.CERTIFICATE_REFUSED,
        "The agent does not accept this manager's admin certificate.",
        "Restart the Tentacle service so that it reloads its trusted certificates. If that "
        "does not help, run `tentacle create-instance` again for "
        f"{_describe(instance)} as the user who created it, then restart the service.",
        str(error),
    )


def _connected(instance: Instance, agent: HttpsAgent, health: AgentHealth) -> ConnectionStatus:
    expected = instance.name or str(instance.config_path)
    if health.instance != expected:
        return ConnectionStatus(
            ConnectionState.WRONG_AGENT,
            f"The agent at {agent.address} serves instance '{health.instance}', not '{expected}'.",
            "Two instances share a port and a certificate. Give one of them another port "
            "(`tentacle configure --port`) and restart its service.",
        )
    return ConnectionStatus(
        ConnectionState.CONNECTED,
        f"Connected to the agent at {agent.address}.",
        health=health,
    )


def _describe(instance: Instance) -> str:
    return (
        f'--instance "{instance.name}"' if instance.name else f'--config "{instance.config_path}"'
    )
