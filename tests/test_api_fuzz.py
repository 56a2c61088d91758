"""Hostile requests against a real agent over mutual TLS: never a 5xx, never a crash.

The agent runs on its own event loop in a thread, as it would in its own process, and
hypothesis sends thousands of generated requests through one trusted keep-alive session.
Start requests are always made invalid (an unknown field at least), so no generated script
ever runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.client.tls import pinned_context
from tests.api_support import Pki, client_identity, running_agent
from tests.support import fast_settings, kill_strays

ROUTES = [
    "/api/capabilities",
    "/api/scripts/start",
    "/api/scripts/status",
    "/api/scripts/cancel",
    "/api/scripts/abandon",
    "/api/scripts/complete",
    "/api/admin/scripts",
    "/api/admin/mutexes",
    "/api/admin/health",
    "/api/admin/log-level",
    "/api/admin/quarantine/retry",
    "/api/admin/scripts/ok-ticket/processes",
    "/api/admin/scripts/..%2F..%2Fetc/processes",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
tickets = st.one_of(
    st.text(max_size=120),
    st.sampled_from(["../etc", "..\\\\x", "a/b", "", " ", "x" * 101, "ok-ticket", "A" * 100]),
)
valid_shapes: dict[str, dict[str, Any]] = {
    "/api/scripts/status": {"Ticket": {"TaskId": "t"}, "LastLogSequence": 0},
    "/api/scripts/cancel": {"Ticket": {"TaskId": "t"}, "LastLogSequence": 0},
    "/api/scripts/abandon": {"Ticket": {"TaskId": "t"}, "LastLogSequence": 0},
    "/api/scripts/complete": {"Ticket": {"TaskId": "t"}},
    "/api/scripts/start": {
        "ScriptTicket": {"TaskId": "t"},
        "ScriptBody": "echo never-runs",
        "Isolation": 1,
        "ScriptIsolationMutexTimeout": "00:00:01",
    },
    "/api/admin/log-level": {"Level": "INFO"},
}


@st.composite
def mutated_bodies(draw: st.DrawFn, route: str) -> bytes:
    shape = dict(valid_shapes.get(route, {}))
    for key in draw(st.lists(st.sampled_from(sorted(shape) or ["X"]), max_size=3)):
        shape[key] = draw(json_values)
    if draw(st.booleans()):
        shape["Ticket" if "Ticket" in shape else "ScriptTicket"] = {"TaskId": draw(tickets)}
    if route == "/api/scripts/start" or draw(st.booleans()):
        shape[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in shape))] = 1
    return json.dumps(shape).encode()


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    route = draw(st.sampled_from(ROUTES) | st.text(max_size=30).map(lambda t: "/api/" + t))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    bodies = [mutated_bodies(route)]
    if route != "/api/scripts/start":  # anything else could be a valid start by chance
        bodies += [st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())]
    return method, route, draw(st.one_of(bodies))


class AgentThread:
    """A real agent and a trusted session, each on its own loop in a background thread."""

    def __init__(self, pki: Pki, directory: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.directory = directory
        self.pki = pki
        self.status_counts: dict[int, int] = {}

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    async def open(self) -> None:
        self.service = ScriptService(self.directory / "home", fast_settings())
        await self.service.open()
        self._agent = running_agent(self.service, self.pki, self.directory)
        self.address = await self._agent.__aenter__()
        agent_der = self.pki.agent.certificate.public_bytes(Encoding.DER)
        context = pinned_context(client_identity(self.pki.admin, self.directory, "fuzz"), agent_der)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    async def send(self, method: str, path: str, body: bytes) -> int:
        async with self.session.request(method, self.address + path, data=body) as response:
            await response.read()
            self.status_counts[response.status] = self.status_counts.get(response.status, 0) + 1
            return response.status

    async def close(self) -> None:
        await self.session.close()
        await self._agent.__aexit__(None, None, None)
        await self.service.close()


@pytest.fixture(scope="module")
def agent_thread(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentThread]:
    directory = tmp_path_factory.mktemp("fuzz")
    agent = AgentThread(pki, directory)
    agent.run(agent.open())
    yield agent
    agent.run(agent.close())
    agent.loop.call_soon_threadsafe(agent.loop.stop)
    agent.thread.join(10)
    kill_strays(directory)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=hostile_requests())
def test_hostile_requests_never_get_a_5xx(
    agent_thread: AgentThread, request: tuple[str, str, bytes]
) -> None:
    method, path, body = request
    status = agent_thread.run(agent_thread.send(method, path, body))
    assert status < 500, (method, path, body[:200])


def test_the_agent_survived_the_fuzzing_and_ran_nothing(agent_thread: AgentThread) -> None:
    counts = agent_thread.status_counts
    assert sum(counts.values()) >= 2000
    assert {200, 400, 404, 405} <= set(counts), counts  # the requests reached every layer
    assert agent_thread.run(agent_thread.send("GET", "/api/capabilities", b"")) == 200
    assert agent_thread.service.list_scripts() == []
