"""The Anti-virus tab on this machine: a real process that looks like ClamAV is found with its
pid as evidence, the exclusions for the instance's home are listed Work and Tools first with
ClamAV's coverage of each, the clamd.conf snippet and request pack are shown and saved, and the
canary measures Work against a control folder."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from pytestqt.qtbot import QtBot

from tentacle_manager.gui.antivirus_panel import AntivirusPanel
from tests.gui_support import QtLoop, Sandbox, our_widgets, qloop, sandbox, wait_until  # noqa: F401


def test_products_exclusions_scripts_and_the_canary(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    instance = sandbox.create_instance("Tentacle")
    home = instance.layout().home
    panel = AntivirusPanel()
    qtbot.addWidget(panel)
    panel.resize(1100, 800)
    panel.show()
    panel.show_instance(instance)
    clamd = tmp_path / "clamd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", clamd)
    scanner = subprocess.Popen([str(clamd), "60"])

    async def scenario() -> None:
        panel.check_button.click()
        await wait_until(lambda: panel.advice is not None, "the advice", 30)
        products = {
            panel.products.topLevelItem(i).text(0): panel.products.topLevelItem(i)
            for i in range(panel.products.topLevelItemCount())
        }
        clamav = next(item for name, item in products.items() if name.startswith("ClamAV"))
        evidence = [clamav.child(i).text(1) for i in range(clamav.childCount())]
        assert any(f"pid {scanner.pid}" in line for line in evidence), evidence
        first = [panel.coverage.topLevelItem(i).text(0) for i in range(2)]
        assert first == [str(home / "Tools"), str(home / "Work")]
        assert panel.coverage.headerItem().text(2).startswith("ClamAV")
        assert panel.coverage.topLevelItem(0).text(2)  # a coverage state for each exclusion
        titles = [panel.artefacts.tabText(i) for i in range(panel.artefacts.count())]
        assert titles == ["Request pack", "clamd.conf snippet"]
        snippet = panel.artefacts.widget(1).toPlainText()
        assert f'OnAccessExcludePath "{home / "Work"}"' in snippet
        saved = tmp_path / "saved"
        panel.save_to(saved)
        assert sorted(p.name for p in saved.iterdir()), panel.status.text()

        panel.measure_button.click()
        await wait_until(lambda: panel.measure_button.isEnabled() and panel.canary.text()
                         and "Creating" not in panel.canary.text(), "the canary", 60)  # fmt: skip
        assert re.search(r"\(\d+\.\d\d; [0-9.]+ ms a script in Work", panel.canary.text())
        await panel.stop()

    try:
        qloop.run(scenario(), timeout=120)
    finally:
        scanner.kill()
        scanner.wait()
    assert [w for w in our_widgets(panel) if not w.accessibleName()] == []
