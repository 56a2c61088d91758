"""The Troubleshoot tab against a real agent: the agent check passes stage by stage, a server
that refuses is named, the fire drill grades cancel on this machine, and a support bundle is
saved without the instance's secrets."""

from __future__ import annotations

import zipfile
from pathlib import Path

from pytestqt.qtbot import QtBot

from tentacle_manager.gui.agent_connection import AgentConnection
from tentacle_manager.gui.troubleshooting_panel import TroubleshootingPanel
from tests.gui_support import (  # noqa: F401 (fixtures)
    InProcessAgent,
    QtLoop,
    Sandbox,
    free_port,
    our_widgets,
    qloop,
    run_tentacle,
    sandbox,
    wait_until,
)
from tests.support import fast_settings, kill_strays

PROXY_PASSWORD = "bundle-must-not-hold-this"


def rows(table) -> list[tuple[str, str]]:
    return [
        (table.topLevelItem(i).text(0), table.topLevelItem(i).text(1))
        for i in range(table.topLevelItemCount())
    ]


def test_agent_check_server_check_fire_drill_and_bundle(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    instance = sandbox.create_instance("Tentacle")
    run_tentacle("proxy", "--instance=Tentacle", "--proxyEnable=true", "--proxyHost=proxy.local",
                 "--proxyUsername=me", f"--proxyPassword={PROXY_PASSWORD}")  # fmt: skip
    agent = InProcessAgent(instance, fast_settings())
    qloop.run(agent.start())
    connection = AgentConnection()
    panel = TroubleshootingPanel(connection)
    qtbot.addWidget(panel)
    panel.resize(1000, 800)
    panel.show()
    panel.show_instance(instance)
    refused = f"https://127.0.0.1:{free_port()}/"

    async def scenario() -> None:
        await connection.select(instance)
        await wait_until(lambda: connection.agent is not None, "it connects")
        panel.check_agent_button.click()
        await wait_until(lambda: "every stage passed" in panel.connectivity_verdict.text(), "ok")
        assert rows(panel.stages) and all(result == "Passed" for _, result in rows(panel.stages))

        panel.server_url.setText(refused)
        panel.check_server_button.click()
        await wait_until(lambda: "failed" in panel.connectivity_verdict.text(), "the refusal")
        assert "refused" in panel.connectivity_verdict.text().lower()
        assert "Skipped" in {result for _, result in rows(panel.stages)}  # after the failure

        panel.run_drill()
        await wait_until(lambda: panel.drill_button.isEnabled(), "the drill ends", 60)
        assert panel.drill_verdict.text().startswith("Cancel works on this machine"), rows(
            panel.rungs
        )

        bundle = tmp_path / "support.zip"
        panel.save_bundle(bundle)
        await wait_until(lambda: panel.bundle_status.text().startswith("Saved"), "it is saved")
        with zipfile.ZipFile(bundle) as archive:
            for member in archive.namelist():
                assert PROXY_PASSWORD.encode() not in archive.read(member), member
        await panel.stop()
        await connection.close()
        await agent.stop()

    try:
        qloop.run(scenario(), timeout=120)
    finally:
        kill_strays(instance.layout().home)
    assert [w for w in our_widgets(panel) if not w.accessibleName()] == []
