"""Opens the real manager window against a real agent with real scripts, and saves a PNG of
each main screen. Run by tests/test_screenshots.py under Xvfb:

    python -m tests.screenshot_driver OUTPUT_DIR THEME     (QT_SCALE_FACTOR sets the scale)

It sandboxes itself (its own instance index, secret store and service state under
OUTPUT_DIR/sandbox) before importing anything that reads them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tentacle_manager.instances.registry import HOME_OVERRIDE_VARIABLE

OUTPUT = Path(sys.argv[1]).resolve()
THEME = sys.argv[2]
SANDBOX = OUTPUT / "sandbox"
os.environ[HOME_OVERRIDE_VARIABLE] = str(SANDBOX / "etc")
os.environ["TENTACLE_SECRET_STORE"] = "file"
os.environ["XDG_STATE_HOME"] = str(SANDBOX / "state")
os.environ["TENTACLE_SERVICE_STATE_ROOT"] = str(SANDBOX / "services")

from PySide6.QtWidgets import QApplication, QWidget, QWizard  # noqa: E402
from qasync import QEventLoop  # noqa: E402

from benchmarks.bench_log_viewer import hour_of_log  # noqa: E402
from tentacle_manager.agent.host.log_files import LOG_FILE_NAME  # noqa: E402
from tentacle_manager.contracts import CancelScriptCommand, ticket  # noqa: E402
from tentacle_manager.gui import watch_children_without_threads  # noqa: E402
from tentacle_manager.gui.main_window import MainWindow  # noqa: E402
from tentacle_manager.gui.theme import apply_theme  # noqa: E402
from tests.gui_support import InProcessAgent, Sandbox, run_tentacle  # noqa: E402
from tests.support import kill_strays, start_command  # noqa: E402

# tests.gui_support chose the offscreen platform for the other tests; these are real windows.
os.environ["QT_QPA_PLATFORM"] = "xcb"

STUBBORN = "trap '' INT TERM; echo holding the web lock; while true; do sleep 0.05; done"
CHATTY = "for i in $(seq 1 100000); do echo deploying file $i of 100000; sleep 0.01; done"


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the window did not show what was expected")
        await asyncio.sleep(0.1)


def save(widget: QWidget, name: str) -> None:
    widget.grab().save(str(OUTPUT / f"{name}.png"))


async def shoot(app: QApplication) -> None:
    instance = Sandbox(SANDBOX).create_instance("Tentacle")
    scanner = pretend_clamd()
    logs = instance.layout().logs
    logs.mkdir(parents=True, exist_ok=True)
    (logs / LOG_FILE_NAME).write_bytes(hour_of_log(lines=5000))  # an hour of a busy agent
    agent = InProcessAgent(instance)
    await agent.start()
    window = MainWindow(preferred="Tentacle")
    window.resize(1280, 800)
    window.show()
    await window.start()
    try:
        await until(lambda: window.connection.agent is not None)
        client = window.connection.agent
        await client.start_script(start_command("deploy-web-42", STUBBORN, mutex="web"))
        await client.start_script(start_command("deploy-web-43", "echo next", mutex="web"))
        await client.start_script(start_command("deploy-api-7", CHATTY, mutex="api"))
        await client.start_script(start_command("backup-db-3", "echo done; exit 0"))
        await asyncio.sleep(2.5)
        save(window, "dashboard")

        window.tabs.setCurrentWidget(window.scripts)
        await window.scripts.refresh()
        window.scripts.select("deploy-web-42")
        await client.cancel_script(CancelScriptCommand(ticket=ticket("deploy-web-42")))
        await until(lambda: window.scripts._ladder.count() > 0)
        window.scripts.select("deploy-web-42")
        await window.scripts.refresh()
        save(window, "scripts-during-cancel")

        window.tabs.setCurrentWidget(window.mutexes)
        await until(lambda: window.mutexes.locks.topLevelItemCount() >= 2)
        window.mutexes._reselect("deploy-web-43")
        save(window, "mutex-inspector")

        window.tabs.setCurrentWidget(window.logs)
        window.logs.level.setCurrentIndex(3)  # warnings and above, with their traces
        await until(lambda: window.logs.model.filtered and window.logs.model.rowCount() > 0)
        await until(lambda: window.logs._searcher is None)
        window.logs.select_row(3)
        save(window, "log-viewer")

        window.tabs.setCurrentWidget(window.antivirus)
        window.antivirus.check()
        await until(lambda: window.antivirus.advice is not None)
        window.antivirus.measure()
        await until(lambda: window.antivirus.measure_button.isEnabled(), 60)
        save(window, "antivirus-advisor")

        window.tabs.setCurrentWidget(window.troubleshoot)
        window.troubleshoot.check_agent()
        await until(lambda: "passed" in window.troubleshoot.connectivity_verdict.text())
        save(window, "troubleshoot")
        await shoot_wizard(window)
    finally:
        await window.shutdown()
        window.close()
        await agent.stop()
        kill_strays(SANDBOX)
        scanner.kill()
        scanner.wait()


def pretend_clamd() -> subprocess.Popen[bytes]:
    """A process named like ClamAV's daemon, so the advisor has a product to show."""
    clamd = SANDBOX / "clamd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", clamd)
    return subprocess.Popen([str(clamd), "600"])


async def shoot_wizard(window: MainWindow) -> None:
    """Every page of the setup wizard, the polling page included, through a real install."""
    wizard = await window.open_setup()
    assert wizard is not None
    wizard.resize(760, 600)

    def next_page() -> None:
        wizard.button(QWizard.WizardButton.NextButton).click()

    await asyncio.sleep(0.3)
    save(wizard, "wizard-1-communication")
    wizard.currentPage().polling.setChecked(True)
    next_page()
    wizard.currentPage().home.setText(str(SANDBOX / "Octopus" / "Tentacle2"))
    wizard.currentPage().app_dir.setText(str(SANDBOX / "Applications" / "Tentacle2"))
    save(wizard, "wizard-2-storage")
    next_page()
    polling = wizard.currentPage()
    polling.url.setText("https://octopus.example.com")
    polling.proxy.mode.setCurrentIndex(2)
    polling.proxy.host.setText("proxy.example.com")
    polling.proxy.port.setText("3128")
    save(wizard, "wizard-3-polling")
    wizard.back()
    wizard.back()
    wizard.currentPage().listening.setChecked(True)
    next_page()
    next_page()
    listening = wizard.currentPage()
    listening.thumbprint.setText("API-NOTATHUMBPRINT")
    next_page()  # refused: the page names the field and the rule
    save(wizard, "wizard-3-listening-with-an-error")
    listening.thumbprint.setText("8E3B1B2F5C1D4A6E9F0A7B3C2D1E4F5A6B7C8D9E")
    next_page()
    await until(lambda: not wizard.prerequisites.view.running, 60)
    save(wizard, "wizard-4-prerequisites")
    next_page()
    save(wizard, "wizard-5-review")
    next_page()
    wizard.install_page.run.click()
    await until(lambda: wizard.install_page.result is not None, 120)
    save(wizard, "wizard-6-install")
    wizard.button(QWizard.WizardButton.FinishButton).click()
    run_tentacle("service", "--instance=Tentacle2", "--stop", "--uninstall")


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    app = QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, THEME)
    with asyncio.Runner(loop_factory=lambda: QEventLoop(app)) as runner:
        watch_children_without_threads(runner.get_loop())
        runner.run(shoot(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
