"""Connectivity checks against real peers on loopback: a real agent over mutual TLS, a port
nobody listens on, a name under .invalid, TLS servers with the wrong certificate, a port that
speaks plain HTTP, one that never answers, and a real CONNECT proxy with credentials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.local import local_agent
from tentacle_manager.diagnostics.connectivity import (
    StageTimeouts,
    check_agent,
    check_server,
    server_route,
)
from tentacle_manager.diagnostics.http_proxy import ProxyRoute, route_for
from tentacle_manager.diagnostics.stages import CheckReport, Outcome, StageResult
from tentacle_manager.instances.tentacle_config import ProxyKind, ProxySettings
from tests.api_support import Pki, agent_client, running_agent
from tests.gui_support import InProcessAgent, Sandbox, run_tentacle, sandbox  # noqa: F401
from tests.network_support import (
    SERVER_HEADER,
    ConnectProxy,
    closed_port,
    http_server,
    https_server,
    silent_server,
)

AGENT_STAGES = ["resolve", "connect", "handshake", "thumbprint", "health"]
SERVER_STAGES = ["resolve", "connect", "handshake", "thumbprint", "request"]
PROXIED_STAGES = ["resolve", "connect", "tunnel", "handshake", "thumbprint", "request"]


def outcomes(report: CheckReport) -> dict[str, Outcome]:
    return {result.stage: result.outcome for result in report.stages}


def stage(report: CheckReport, name: str) -> StageResult:
    return next(result for result in report.stages if result.stage == name)


def skipped_after(report: CheckReport, failed: str) -> None:
    """Every stage after the failed one was reported as skipped, naming the failure."""
    names = [result.stage for result in report.stages]
    title = stage(report, failed).title
    for result in report.stages[names.index(failed) + 1 :]:
        assert result.outcome is Outcome.SKIPPED
        assert result.detail == f"not tried, because an earlier stage failed ({title})"
        assert result.seconds == 0.0


def admin_agent(address: str, pki: Pki, tmp_path: Path) -> HttpsAgent:
    return agent_client(address, pki, pki.admin, tmp_path, "admin")


# --- manager -> agent ----------------------------------------------------------------------------


async def test_every_stage_passes_against_a_real_agent_and_is_reported_as_it_ends(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    heard: list[StageResult] = []
    async with (
        running_agent(service, pki, tmp_path) as address,
        admin_agent(address, pki, tmp_path) as agent,
    ):
        report = await check_agent(agent, on_stage=heard.append)
    assert report.passed and report.failure is None
    assert [r.stage for r in report.stages] == AGENT_STAGES
    assert heard == list(report.stages)
    assert all(r.outcome is Outcome.PASSED and r.seconds >= 0 for r in report.stages)
    assert stage(report, "resolve").detail == "127.0.0.1"
    handshake = stage(report, "handshake")
    assert handshake.facts["thumbprint"] == pki.agent.thumbprint
    assert handshake.facts["subject"] == "CN=Octopus Tentacle"
    assert handshake.detail.startswith("TLSv1.3; certificate CN=Octopus Tentacle, thumbprint ")
    assert stage(report, "thumbprint").detail == f"thumbprint {pki.agent.thumbprint} as expected"
    assert "instance Tentacle" in stage(report, "health").detail
    assert "accepts scripts" in stage(report, "health").detail


async def test_a_port_nobody_listens_on_is_refused_and_the_rest_is_skipped(
    pki: Pki, tmp_path: Path
) -> None:
    port = closed_port()
    async with admin_agent(f"https://127.0.0.1:{port}", pki, tmp_path) as agent:
        report = await check_agent(agent)
    assert outcomes(report) == {
        "resolve": Outcome.PASSED,
        "connect": Outcome.FAILED,
        "handshake": Outcome.SKIPPED,
        "thumbprint": Outcome.SKIPPED,
        "health": Outcome.SKIPPED,
    }
    failure = report.failure
    assert failure is not None and failure.stage == "connect"
    assert failure.detail == f"nothing is listening on 127.0.0.1:{port} (connection refused)"
    assert failure.remedy == (
        f"Check that the agent is running and listens on port {port}, and that no firewall "
        "rejects the connection."
    )
    skipped_after(report, "connect")


async def test_a_name_that_does_not_resolve_stops_at_the_first_stage(
    pki: Pki, tmp_path: Path
) -> None:
    async with admin_agent("https://tentacle.invalid:10933", pki, tmp_path) as agent:
        report = await check_agent(agent)
    failure = report.failure
    assert failure is not None and failure.stage == "resolve"
    assert failure.title == "Resolve tentacle.invalid"
    assert failure.detail == "the name tentacle.invalid does not resolve"
    assert failure.remedy is not None and "Check the spelling of tentacle.invalid" in failure.remedy
    skipped_after(report, "resolve")


async def test_an_agent_with_another_certificate_fails_the_thumbprint_stage(
    pki: Pki, tmp_path: Path
) -> None:
    async with (
        https_server(pki.stranger, tmp_path) as port,
        admin_agent(f"https://127.0.0.1:{port}", pki, tmp_path) as agent,
    ):
        report = await check_agent(agent)
    assert stage(report, "handshake").outcome is Outcome.PASSED
    assert stage(report, "handshake").facts["thumbprint"] == pki.stranger.thumbprint
    failure = report.failure
    assert failure is not None and failure.stage == "thumbprint"
    assert failure.detail == (
        f"the certificate presented has thumbprint {pki.stranger.thumbprint}, "
        f"expected {pki.agent.thumbprint}"
    )
    assert failure.remedy is not None and "tentacle show-thumbprint" in failure.remedy
    skipped_after(report, "thumbprint")


async def test_a_client_the_agent_does_not_trust_fails_the_authenticated_call(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.stranger, tmp_path, "stranger") as agent,
    ):
        report = await check_agent(agent)
    assert outcomes(report)["thumbprint"] is Outcome.PASSED
    failure = report.failure
    assert failure is not None and failure.stage == "health"
    assert "refused this client's certificate" in failure.detail
    assert f"tentacle configure --trust={pki.stranger.thumbprint}" in failure.detail


async def test_a_port_that_speaks_plain_http_fails_the_handshake_in_plain_words(
    pki: Pki, tmp_path: Path
) -> None:
    async with (
        http_server() as port,
        admin_agent(f"https://127.0.0.1:{port}", pki, tmp_path) as agent,
    ):
        report = await check_agent(agent)
    failure = report.failure
    assert failure is not None and failure.stage == "handshake"
    assert failure.detail == f"127.0.0.1:{port} does not speak TLS (it answered in plain text)"


async def test_a_listener_that_never_answers_times_out_with_the_stage_deadline(
    pki: Pki, tmp_path: Path
) -> None:
    timeouts = StageTimeouts(handshake=0.3)
    async with (
        silent_server() as port,
        admin_agent(f"https://127.0.0.1:{port}", pki, tmp_path) as agent,
    ):
        report = await check_agent(agent, timeouts=timeouts)
    failure = report.failure
    assert failure is not None and failure.stage == "handshake"
    assert failure.detail == (
        f"127.0.0.1:{port} accepted the connection but did not complete a TLS handshake "
        "within 0.3 s"
    )
    assert 0.3 <= failure.seconds < 2.0


async def test_the_instance_agent_is_checked_with_its_own_thumbprint_and_admin_certificate(
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Checked")
    agent = InProcessAgent(instance)
    await agent.start()
    try:
        async with local_agent(instance) as client:
            report = await check_agent(client)
    finally:
        await agent.stop()
    assert report.passed
    assert (
        stage(report, "handshake").facts["thumbprint"] == instance.config().certificate_thumbprint
    )
    assert "instance Checked" in stage(report, "health").detail


# --- this machine -> Octopus Server --------------------------------------------------------------


async def test_a_server_check_reports_the_certificate_and_pins_its_thumbprint(
    pki: Pki, tmp_path: Path
) -> None:
    async with https_server(pki.server, tmp_path) as port:
        url = f"https://127.0.0.1:{port}/"
        report = await check_server(url, expected_thumbprint=pki.server.thumbprint.lower())
    assert report.passed, report.to_json()
    assert [r.stage for r in report.stages] == SERVER_STAGES
    facts = stage(report, "handshake").facts
    assert facts["thumbprint"] == pki.server.thumbprint
    assert facts["subject"] == "CN=Octopus Tentacle"
    assert facts["not_after"].startswith(str(pki.server.certificate.not_valid_after_utc.year))
    assert stage(report, "request").detail == f"HTTP 200 OK from {SERVER_HEADER}"


async def test_without_a_thumbprint_the_pin_is_skipped_but_the_check_goes_on(
    pki: Pki, tmp_path: Path
) -> None:
    async with https_server(pki.server, tmp_path) as port:
        report = await check_server(f"https://127.0.0.1:{port}")
    assert report.passed
    pin = stage(report, "thumbprint")
    assert pin.outcome is Outcome.SKIPPED
    assert pin.detail == "no thumbprint was given, so the certificate is not pinned"
    assert stage(report, "request").outcome is Outcome.PASSED


async def test_a_server_with_the_wrong_certificate_fails_the_pin(pki: Pki, tmp_path: Path) -> None:
    async with https_server(pki.stranger, tmp_path) as port:
        report = await check_server(
            f"https://127.0.0.1:{port}", expected_thumbprint=pki.server.thumbprint
        )
    failure = report.failure
    assert failure is not None and failure.stage == "thumbprint"
    assert failure.detail == (
        f"the certificate presented has thumbprint {pki.stranger.thumbprint}, "
        f"expected {pki.server.thumbprint}"
    )
    assert failure.remedy is not None and "TLS-inspecting" in failure.remedy
    skipped_after(report, "thumbprint")


async def test_an_unresolvable_server_and_a_refused_port_are_told_apart() -> None:
    unresolvable = await check_server("https://octopus.invalid:10943")
    assert unresolvable.failure is not None
    assert unresolvable.failure.detail == "the name octopus.invalid does not resolve"
    port = closed_port()
    refused = await check_server(f"https://127.0.0.1:{port}")
    assert refused.failure is not None
    assert (
        refused.failure.detail == f"nothing is listening on 127.0.0.1:{port} (connection refused)"
    )
    assert refused.failure.remedy is not None
    assert "the Octopus Server is running" in refused.failure.remedy


async def test_the_server_is_reached_through_a_connect_proxy_with_credentials(
    pki: Pki, tmp_path: Path
) -> None:
    async with (
        https_server(pki.server, tmp_path) as port,
        ConnectProxy("bob", "s3cret") as proxy,
    ):
        route = ProxyRoute("127.0.0.1", proxy.port, ProxyKind.POLLING.value, "bob", "s3cret")
        report = await check_server(
            f"https://127.0.0.1:{port}", expected_thumbprint=pki.server.thumbprint, proxy=route
        )
    assert report.passed, report.to_json()
    assert [r.stage for r in report.stages] == PROXIED_STAGES
    assert stage(report, "resolve").title == "Resolve the proxy 127.0.0.1"
    assert (
        stage(report, "tunnel").detail == "the proxy answered 'HTTP/1.1 200 Connection established'"
    )
    # The tunnel stage and the request (aiohttp's own proxy support) each went through it.
    assert proxy.requests == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"] * 2


async def test_a_proxy_that_rejects_the_password_says_so(pki: Pki, tmp_path: Path) -> None:
    async with (
        https_server(pki.server, tmp_path) as port,
        ConnectProxy("bob", "s3cret") as proxy,
    ):
        route = ProxyRoute(
            "127.0.0.1", proxy.port, ProxyKind.POLLING.value, "bob", "wrong", "polling-proxy"
        )
        report = await check_server(f"https://127.0.0.1:{port}", proxy=route)
    failure = report.failure
    assert failure is not None and failure.stage == "tunnel"
    assert failure.detail == (
        f"the proxy 127.0.0.1:{proxy.port} (Octopus.Server.Proxy) as user bob rejected the "
        "credentials of bob (407 Proxy Authentication Required)"
    )
    assert failure.remedy is not None and "tentacle polling-proxy --proxyUsername" in failure.remedy
    skipped_after(report, "tunnel")


async def test_a_proxy_that_cannot_reach_the_server_says_so() -> None:
    port = closed_port()
    async with ConnectProxy("bob", "s3cret") as proxy:
        route = ProxyRoute("127.0.0.1", proxy.port, "https_proxy", "bob", "s3cret")
        report = await check_server(f"https://127.0.0.1:{port}", proxy=route)
    failure = report.failure
    assert failure is not None and failure.stage == "tunnel"
    assert failure.detail == (
        f"the proxy 127.0.0.1:{proxy.port} (https_proxy) as user bob could not reach "
        f"127.0.0.1:{port} (502 Bad Gateway)"
    )


async def test_the_instance_polling_proxy_is_the_route_to_the_server(
    sandbox: Sandbox,  # noqa: F811
    pki: Pki,
    tmp_path: Path,
) -> None:
    instance = sandbox.create_instance("Proxied")
    async with (
        https_server(pki.server, tmp_path) as port,
        ConnectProxy("alice", "pa55word") as proxy,
    ):
        run_tentacle(
            "polling-proxy",
            "--instance=Proxied",
            "--proxyEnable=true",
            f"--proxyHost=127.0.0.1:{proxy.port}",
            f"--proxyPort={proxy.port}",
            "--proxyUsername=alice",
            "--proxyPassword=pa55word",
        )
        url = f"https://127.0.0.1:{port}"
        route = server_route(instance, url)
        assert route is not None
        assert (route.host, route.port, route.username, route.password) == (
            "127.0.0.1",
            proxy.port,
            "alice",
            "pa55word",
        )
        assert route.describe() == (
            f"proxy 127.0.0.1:{proxy.port} (Octopus.Server.Proxy) as user alice"
        )
        assert server_route(instance, url, ProxyKind.HTTP) is None  # that one is not set
        report = await check_server(url, proxy=route)
    assert report.passed, report.to_json()
    assert len(proxy.requests) == 2


def test_the_system_proxy_is_taken_from_the_environment_and_honours_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    default = ProxySettings(use_default_proxy=True, host=None, port=80, username="u", password="p")
    assert route_for(default, ProxyKind.POLLING, "octopus.example") is None  # none set
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    route = route_for(default, ProxyKind.POLLING, "octopus.example")
    assert route == ProxyRoute("proxy.corp", 3128, "https_proxy", "u", "p", "polling-proxy")
    monkeypatch.setenv("https_proxy", "http://carol:pw%21@proxy.corp")
    route = route_for(default, ProxyKind.HTTP, "octopus.example")
    assert route == ProxyRoute("proxy.corp", 80, "https_proxy", "carol", "pw!", "proxy")
    monkeypatch.setenv("no_proxy", ".example")
    assert route_for(default, ProxyKind.POLLING, "octopus.example") is None
    off = ProxySettings(use_default_proxy=False, host=None, port=80, username=None, password=None)
    assert route_for(off, ProxyKind.POLLING, "elsewhere.test") is None


def test_the_troubleshooting_core_never_imports_qt() -> None:
    code = (
        "import sys; import tentacle_manager.diagnostics.connectivity, "
        "tentacle_manager.diagnostics.fire_drill, tentacle_manager.diagnostics.support_bundle; "
        "print(any(name.startswith('PySide6') for name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
