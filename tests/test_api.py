"""The agent API over real mutual TLS on loopback: who gets in, what they can do, and how bad
requests are answered."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.client.agent_client import AgentRequestError
from tentacle_manager.client.tls import AgentIdentityError, AgentRefusedError, pinned_context
from tentacle_manager.contracts import (
    CancelScriptCommand,
    Capability,
    CompleteScriptCommand,
    MutexEvent,
    MutexEventKind,
    MutexSnapshot,
    ProcessStatus,
    ticket,
)
from tentacle_manager.instances.certificates import write_tls_files
from tests.api_support import PASSPHRASE, Pki, agent_client, client_identity, running_agent
from tests.support import start_command, texts, wait_complete

GATE_LOG = "tentacle_manager.agent.api"


async def test_a_trusted_client_runs_a_script_end_to_end(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.server, tmp_path, "server") as agent,
    ):
        capabilities = await agent.capabilities()
        assert {Capability.ABANDON_SCRIPT, Capability.ABANDON_SCRIPT_V2} <= set(
            capabilities.supported_capabilities
        )
        started = await agent.start_script(start_command("api-1", "echo over-tls"))
        assert started.ticket == ticket("api-1")
        status = await wait_complete(agent, "api-1")
        assert status.exit_code == 0
        assert "over-tls" in texts(status)
        await agent.complete_script(CompleteScriptCommand(ticket=ticket("api-1")))
        assert not (service.work_root / "api-1").exists()


async def test_a_client_without_a_certificate_gets_only_the_friendly_page(
    service: ScriptService, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    caplog.set_level(logging.WARNING, GATE_LOG)
    async with (
        running_agent(service, pki, tmp_path) as address,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        async with session.get(address + "/") as page:
            assert page.status == 200
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "Octopus Tentacle configured successfully" in await page.text()
        async with session.get(address + "/api/capabilities") as refused:
            assert refused.status == 401
            body = await refused.json()
            assert "trusted client certificate" in body["Error"]
    assert "no client certificate was presented" in caplog.text
    assert pki.admin.thumbprint in caplog.text  # the trusted thumbprints are listed


@pytest.mark.parametrize("who", ["stranger", "expired"])
async def test_untrusted_and_expired_certificates_are_refused_and_logged(
    who: str, service: ScriptService, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    identity = getattr(pki, who)
    caplog.set_level(logging.WARNING, GATE_LOG)
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, identity, tmp_path, who) as agent,
    ):
        with pytest.raises(AgentRefusedError, match=identity.thumbprint):
            await agent.capabilities()
    refusal = next(r.getMessage() for r in caplog.records if "Refused a TLS" in r.getMessage())
    assert "127.0.0.1:" in refusal
    assert f"Presented certificate: {identity.thumbprint}" in refusal
    assert pki.admin.thumbprint in refusal and pki.server.thumbprint in refusal
    assert ("expired" if who == "expired" else "not trusted") in refusal


async def test_the_client_refuses_an_agent_with_another_thumbprint(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with running_agent(service, pki, tmp_path) as address:
        agent = agent_client(address, pki, pki.admin, tmp_path, "admin")
        agent._thumbprint = pki.stranger.thumbprint  # expecting someone else
        with pytest.raises(AgentIdentityError) as refused:
            await agent.capabilities()
        assert refused.value.presented == pki.agent.thumbprint
        assert refused.value.expected == pki.stranger.thumbprint
        await agent.close()


async def test_a_server_holding_another_key_fails_the_pinned_handshake(
    pki: Pki, tmp_path: Path
) -> None:
    """The client trusts only the agent's certificate, so a server without its key is refused
    during the handshake, before any request is sent."""
    cert, key = write_tls_files(pki.stranger, tmp_path, "impostor", PASSPHRASE)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key, PASSPHRASE)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    agent_der = pki.agent.certificate.public_bytes(Encoding.DER)
    context = pinned_context(client_identity(pki.admin, tmp_path, "admin"), agent_der)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", port, ssl=context)
    server.close()


async def test_admin_verbs_need_the_admin_certificate(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.server, tmp_path, "server") as server,
        agent_client(address, pki, pki.admin, tmp_path, "admin") as admin,
    ):
        assert (await server.health()).instance == "Tentacle"
        with pytest.raises(AgentRequestError) as refused:
            await server.set_log_level("DEBUG")
        assert refused.value.status == 403
        assert await admin.set_log_level("debug") == "DEBUG"
        assert await server.log_level() == "DEBUG"
        assert await admin.set_log_level("INFO") == "INFO"


async def test_the_mutex_stream_starts_with_a_snapshot_and_follows_changes(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.admin, tmp_path, "admin") as agent,
    ):
        stream = agent.mutex_events()
        first = await anext(stream)
        assert first == MutexSnapshot(mutexes=[])
        await agent.start_script(start_command("held", "sleep 0.3", mutex="deploy"))
        kinds = []
        while MutexEventKind.RELEASED not in kinds:
            event = await asyncio.wait_for(anext(stream), 10)
            assert isinstance(event, MutexEvent) and event.name == "deploy"
            kinds.append(event.kind)
        assert kinds == [MutexEventKind.ACQUIRED, MutexEventKind.RELEASED]
        await stream.aclose()


BAD_REQUESTS = [
    ("malformed JSON", "/api/scripts/status", b'{"Ticket": ', "(body)"),
    (
        "wrong type",
        "/api/scripts/status",
        b'{"Ticket": {"TaskId": "a"}, "LastLogSequence": "x"}',
        "LastLogSequence",
    ),
    (
        "unknown field",
        "/api/scripts/cancel",
        b'{"Ticket": {"TaskId": "a"}, "Surprise": 1}',
        "Surprise",
    ),
    (
        "escaping ticket",
        "/api/scripts/status",
        b'{"Ticket": {"TaskId": "../etc"}}',
        "Ticket.TaskId",
    ),
    ("not an object", "/api/scripts/complete", b"[1, 2, 3]", "(body)"),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
async def test_bad_requests_get_a_400_naming_the_field(
    case: str,
    path: str,
    body: bytes,
    field: str,
    service: ScriptService,
    pki: Pki,
    tmp_path: Path,
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        raw_session(pki, tmp_path) as session,
    ):
        async with session.post(address + path, data=body) as response:
            assert response.status == 400, case
            answer = await response.json()
        assert field in answer["Problems"], answer
        async with session.get(address + "/api/capabilities") as still_serving:
            assert still_serving.status == 200


async def test_a_huge_body_gets_a_413_and_the_agent_keeps_serving(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path, max_body=1024 * 1024) as address,
        raw_session(pki, tmp_path) as session,
    ):
        huge = b'{"ScriptBody": "' + b"x" * (100 * 1024 * 1024) + b'"}'
        async with session.post(address + "/api/scripts/start", data=huge) as response:
            assert response.status == 413
            assert "Error" in await response.json()
        async with session.get(address + "/api/capabilities") as still_serving:
            assert still_serving.status == 200


@asynccontextmanager
async def raw_session(pki: Pki, directory: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A trusted session that sends whatever bytes a test likes."""
    agent_der = pki.agent.certificate.public_bytes(Encoding.DER)
    context = pinned_context(client_identity(pki.admin, directory, "raw"), agent_der)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


async def test_a_scripts_process_tree_is_sampled_for_the_manager(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.admin, tmp_path, "admin") as agent,
    ):
        await agent.start_script(start_command("tree", "sleep 30 & sleep 30; wait"))
        await asyncio.sleep(0.5)
        tree = await agent.script_processes(ticket("tree"))
        names = [p.name for p in tree.processes]
        assert names[0] == "bash" and names.count("sleep") == 2, names
        assert all(p.status is ProcessStatus.SLEEPING for p in tree.processes[1:])
        await agent.cancel_script(CancelScriptCommand(ticket=ticket("tree")))
        await wait_complete(agent, "tree")
        after = await agent.script_processes(ticket("tree"))
        assert after.processes == []
        first = after.cancel_ladder[0]
        assert first.signal == "SIGINT" and tree.processes[0].pid in first.signalled
        with pytest.raises(AgentRequestError) as unknown:
            await agent.script_processes(ticket("nobody"))
        assert unknown.value.status == 404
