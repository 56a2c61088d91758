"""The dashboard against a real agent: the instance's own `serve` on the window's qasync loop,
reached over mutual TLS by the real client, and the real service manager for the buttons."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from tentacle_manager import __version__
from tentacle_manager.gui.dashboard import Dashboard, proxy_sentence, trust_sentence
from tentacle_manager.gui.main_window import MainWindow
from tentacle_manager.gui.responsiveness import LoopLagProbe
from tentacle_manager.instances.registry import InstanceRegistry
from tentacle_manager.instances.tentacle_config import CommunicationStyle, ProxyKind, TrustedServer
from tentacle_manager.platform.services.choose import choose_manager
from tests.gui_support import (  # noqa: F401 (fixtures)
    InProcessAgent,
    QtLoop,
    Sandbox,
    our_widgets,
    qloop,
    run_tentacle,
    sandbox,
    wait_until,
)

LOOP_BUDGET = 0.05  # invariant 6: the Qt event loop is never blocked for longer


def open_window(qtbot: QtBot, qloop: QtLoop) -> MainWindow:  # noqa: F811
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qloop.run(window.start())
    return window


def state_of(dashboard: Dashboard) -> str:
    return dashboard.agent.state.text()


async def close(window: MainWindow) -> None:
    await window.shutdown()
    window.close()


def test_dashboard_follows_the_agent_down_and_back(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Tentacle")
    config = instance.config()
    agent = InProcessAgent(instance)
    qloop.run(agent.start())
    window = open_window(qtbot, qloop)
    board = window.dashboard
    meter = LoopLagProbe()

    async def scenario() -> None:
        meter.start()
        await wait_until(lambda: state_of(board) == "Connected", "the dashboard connects")
        assert board.agent.version.text() == __version__
        assert board.identity.thumbprint.text() == config.certificate_thumbprint
        assert board.communication.mode.text() == "Listening"
        assert board.communication.trust.text() == (
            f"Listening on port {config.port} on address 127.0.0.1; "
            "no Octopus Server is trusted yet."
        )
        assert board.folders.home.text() == str(config.home)
        assert board.folders.logs.text() == str(config.home / "Logs")
        board.identity.copy.click()
        assert QGuiApplication.clipboard().text() == config.certificate_thumbprint

        await agent.stop()
        await wait_until(lambda: state_of(board) == "Agent down", "the agent is seen down")
        assert "Start the Tentacle service" in board.agent.remedy.text()
        assert board.agent.version.text() == "Unknown"
        worst = (await meter.stop()).worst

        await agent.start()  # not measured: the test's agent loads its keys on the shared loop
        meter.start()
        board.agent.retry.click()
        took = await wait_until(lambda: state_of(board) == "Connected", "Retry reconnects")
        assert took < 1.5  # sooner than the next poll would have
        assert max(worst, (await meter.stop()).worst) < LOOP_BUDGET
        await close(window)
        await agent.stop()

    qloop.run(scenario())


def test_instance_with_vanished_config_is_flagged_not_forgotten(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    sandbox.create_instance("Tentacle")
    sandbox.create_instance("Vanished").config_path.unlink()
    window = open_window(qtbot, qloop)
    labels = [window.picker.itemText(i) for i in range(window.picker.count())]
    assert labels == ["(Default)", "Vanished - configuration file missing"]

    async def scenario() -> None:
        window.picker.setCurrentIndex(1)
        board = window.dashboard
        await wait_until(lambda: board.problem.isVisibleTo(window), "the problem shows")
        assert "Vanished.config of instance Vanished is missing" in board.problem.text()
        await wait_until(lambda: state_of(board) == "Instance problem", "the state says so")
        assert "delete-instance" in board.agent.remedy.text()
        await close(window)

    qloop.run(scenario())
    assert InstanceRegistry().find("Vanished").name == "Vanished"  # still registered


def test_every_widget_has_an_accessible_name(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    sandbox.create_instance("Tentacle")
    window = open_window(qtbot, qloop)
    ours = our_widgets(window)
    unnamed = [f"{type(w).__name__} {w.objectName()!r}" for w in ours if not w.accessibleName()]
    assert unnamed == []
    assert len(ours) > 40  # the welcome page, the picker and every part of the dashboard
    qloop.run(close(window))


@pytest.mark.skipif(choose_manager().name != "supervisor", reason="needs the user-mode supervisor")
def test_service_buttons_stop_and_start_the_agent(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    sandbox.create_instance("Tentacle")
    run_tentacle("service", "--instance=Tentacle", "--install", "--start")
    try:
        window = open_window(qtbot, qloop)
        board = window.dashboard
        service = board.service

        async def scenario() -> None:
            await wait_until(lambda: service.status.text() == "Running", "the service runs")
            await wait_until(lambda: state_of(board) == "Connected", "the dashboard connects")
            assert not service.buttons["start"].isEnabled()
            service.buttons["stop"].click()
            await wait_until(lambda: service.status.text() == "Stopped", "the service stops")
            await wait_until(lambda: state_of(board) == "Agent down", "the agent is down")
            service.buttons["start"].click()
            await wait_until(lambda: service.status.text() == "Running", "it runs again", 20)
            await wait_until(lambda: state_of(board) == "Connected", "it reconnects")
            service.buttons["reinstall"].click()
            await wait_until(lambda: service.status.text() == "Reinstalling...", "it reinstalls")
            await wait_until(lambda: service.status.text() == "Running", "reinstalled", 20)
            assert service.error.text() == ""  # nothing failed on the way
            await wait_until(lambda: state_of(board) == "Connected", "it reconnects again")
            await close(window)

        qloop.run(scenario(), timeout=40)
    finally:
        run_tentacle("service", "--instance=Tentacle", "--stop", "--uninstall")


def test_proxy_sentence_follows_tentacle_managers_wording(sandbox: Sandbox) -> None:  # noqa: F811
    instance = sandbox.create_instance("Tentacle")
    assert proxy_sentence(instance.config()) == (
        "Tentacle is using the default proxy server for web requests."
    )
    run_tentacle("proxy", "--instance=Tentacle", "--proxyEnable=true", "--proxyHost=proxy.local")
    with instance.config_file.edit() as config:
        config.add_or_update_trusted_server(
            TrustedServer.of("A" * 40, CommunicationStyle.TENTACLE_ACTIVE, "https://a:10943/")
        )
    run_tentacle("polling-proxy", "--instance=Tentacle", "--proxyEnable=false")
    assert proxy_sentence(instance.config()) == (
        "Tentacle is using a custom proxy server for web requests, and is not using a proxy "
        "server to poll the Octopus Server."
    )
    run_tentacle("polling-proxy", "--instance=Tentacle", "--proxyEnable=true", "--proxyUsername=me")
    assert proxy_sentence(instance.config()).endswith(
        "and is using the default proxy server with custom credentials to poll the Octopus Server."
    )


def test_trust_sentence_names_polled_servers(sandbox: Sandbox) -> None:  # noqa: F811
    instance = sandbox.create_instance("Tentacle")
    with instance.config_file.edit() as config:
        for thumbprint, address in (("A" * 40, "https://a:10943/"), ("B" * 40, "https://b/")):
            config.add_or_update_trusted_server(
                TrustedServer.of(thumbprint, CommunicationStyle.TENTACLE_ACTIVE, address)
            )
        config.add_or_update_trusted_server(TrustedServer.of("C" * 40))
    assert trust_sentence(instance.config()) == (
        "Polling https://a:10943/ and https://b/; 3 Octopus Servers are trusted."
    )


def test_proxy_dialog_names_bad_fields_then_applies_and_keeps_the_password_secret(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    instance = sandbox.create_instance("Tentacle")
    window = open_window(qtbot, qloop)
    password = "pr0xy-s3cret"

    async def scenario() -> None:
        board = window.dashboard
        await wait_until(
            lambda: (
                "not using" in board.communication.proxy.text()
                or "default proxy" in board.communication.proxy.text()
            ),
            "the proxy line",
        )
        board.communication.change_proxy.click()
        await wait_until(lambda: window.proxy_dialog is not None, "the dialog opens")
        dialog = window.proxy_dialog
        assert dialog.polling is None  # a listening instance has no polling proxy
        dialog.web.mode.setCurrentIndex(2)  # a custom proxy
        dialog.web.host.setText("proxy.example.com")
        dialog.web.port.setText("99999")
        dialog.apply.click()
        assert "Web proxy port: '99999' is not a TCP port" in dialog.errors.text()
        assert dialog.log.toPlainText() == ""  # nothing ran
        dialog.web.port.setText("3128")
        dialog.web.username.setText("me")
        dialog.web.password.setText(password)
        dialog.apply.click()
        await wait_until(lambda: "changed" in dialog.status.text(), "the change is applied", 30)
        assert password not in dialog.log.toPlainText()
        assert "--proxyPassword '********'" in dialog.log.toPlainText()
        await wait_until(
            lambda: "custom proxy server" in board.communication.proxy.text(), "the line follows"
        )
        await close(window)

    qloop.run(scenario(), timeout=60)
    assert password not in instance.config_path.read_text(encoding="utf-8-sig")
    assert instance.config().proxy(ProxyKind.HTTP).password == password
