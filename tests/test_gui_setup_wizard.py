"""The setup wizard in the real window, end to end on this machine: every page of the listening
path filled in, a bad field named, the prerequisite checks, the masked review, the install under
the user-mode supervisor, and the dashboard showing the running agent's thumbprint."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox, QWizard
from pytestqt.qtbot import QtBot

from tentacle_manager.gui import setup_wizard
from tentacle_manager.gui.agent_connection import ConnectionState
from tentacle_manager.gui.main_window import MainWindow
from tentacle_manager.gui.setup_wizard import (
    COMMUNICATION,
    INSTALL,
    LISTENING,
    POLLING,
    PREREQUISITES,
    REVIEW,
    STORAGE,
    SetupWizard,
)
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import InstanceRegistry, select_instance
from tentacle_manager.setup.answers import Style
from tentacle_manager.setup.plan import Step
from tests.gui_support import (  # noqa: F401 (fixtures)
    QtLoop,
    Sandbox,
    free_port,
    our_widgets,
    qloop,
    run_tentacle,
    sandbox,
    wait_until,
)
from tests.support import kill_strays

WIZARD_BUTTONS = [
    QWizard.WizardButton.BackButton,
    QWizard.WizardButton.NextButton,
    QWizard.WizardButton.FinishButton,
    QWizard.WizardButton.CancelButton,
]
THUMBPRINT = "0123456789abcdef0123456789abcdef01234567"
API_KEY = "API-NEVERSHOWNANYWHERE42"
PROXY_PASSWORD = "s3cret proxy"


def open_main_window(qtbot: QtBot, qloop: QtLoop) -> MainWindow:  # noqa: F811
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qloop.run(window.start())
    return window


def next_page(wizard: SetupWizard) -> None:
    wizard.button(QWizard.WizardButton.NextButton).click()


@pytest.mark.slow
def test_the_listening_path_installs_a_running_agent_the_dashboard_shows(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    window = open_main_window(qtbot, qloop)
    assert window.pages.currentWidget() is window.welcome
    wizard = qloop.run(window.open_setup())
    assert wizard is not None and wizard.currentId() == COMMUNICATION
    home = tmp_path / "Octopus Home"

    async def scenario() -> None:
        page = wizard.currentPage()
        assert page.instance.text() == "Tentacle" and page.listening.isChecked()
        next_page(wizard)
        assert wizard.currentId() == STORAGE
        wizard.currentPage().home.setText(str(home))
        wizard.currentPage().app_dir.setText(str(tmp_path / "Applications"))
        next_page(wizard)
        assert wizard.currentId() == LISTENING
        listening = wizard.currentPage()
        listening.port.setText("70000")
        listening.thumbprint.setText("API-123")
        next_page(wizard)
        assert wizard.currentId() == LISTENING  # stays: both fields are named with their rule
        assert "Listen port: '70000' is not a TCP port" in listening.errors.text()
        assert "API key, not an Octopus Server certificate thumbprint" in listening.errors.text()
        listening.port.setText(str(free_port()))
        listening.thumbprint.setText(THUMBPRINT)
        next_page(wizard)
        assert wizard.currentId() == PREREQUISITES
        checks = wizard.prerequisites.view
        await wait_until(lambda: not checks.running and checks.results, "the checks end", 60)
        assert checks.results["listen-port"].state.value == "passed"
        next_page(wizard)
        assert wizard.currentId() == REVIEW
        script = wizard.currentPage().script.toPlainText()
        assert "--trust 0123456789ABCDEF0123456789ABCDEF01234567" in script
        assert "--manager supervisor" in script
        assert "user-mode supervisor" in wizard.currentPage().where.text()
        next_page(wizard)
        assert wizard.currentId() == INSTALL
        wizard.install_page.run.click()
        await wait_until(lambda: wizard.install_page.result is not None, "the install ends", 120)
        log = wizard.install_page.log.toPlainText()
        assert wizard.install_page.isComplete(), log
        assert "Installation complete" in wizard.install_page.status.text()
        wizard.button(QWizard.WizardButton.FinishButton).click()
        board = window.dashboard
        await wait_until(lambda: window.picker.currentText() == "(Default)", "it is selected")
        await wait_until(
            lambda: window.connection.status.state is ConnectionState.CONNECTED,
            "the dashboard reaches the agent",
            30,
        )
        instance = Instance(select_instance(InstanceRegistry(), instance="Tentacle"))
        identity = instance.identity()
        assert identity is not None
        await wait_until(
            lambda: board.identity.thumbprint.text() == identity.thumbprint, "the thumbprint shows"
        )

        dialog = await window.open_delete()  # and delete it again, files included
        assert dialog is not None
        assert "--stop --uninstall --manager supervisor" in dialog.script.toPlainText()
        assert f"The home folder {home}" in dialog.stays.text()
        dialog.remove_files.setChecked(True)
        await wait_until(lambda: str(home) not in dialog.stays.text(), "the plan follows")
        assert "applications folder" in dialog.stays.text()
        assert "Octopus web portal" in dialog.stays.text()
        dialog.delete.click()
        await wait_until(lambda: dialog.status.text().startswith("Deleted"), "it is deleted", 60)
        await wait_until(lambda: window.pages.currentWidget() is window.welcome, "none is left")
        assert not home.exists()
        assert InstanceRegistry().list_instances() == []
        await window.shutdown()

    try:
        qloop.run(scenario(), timeout=240)
    finally:
        if InstanceRegistry().list_instances():
            run_tentacle("service", "--instance=Tentacle", "--stop", "--uninstall")
        kill_strays(home)


def test_the_polling_path_masks_secrets_and_says_it_cannot_install_here(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    window = open_main_window(qtbot, qloop)
    wizard = qloop.run(window.open_setup())
    assert wizard is not None

    async def scenario() -> None:
        wizard.currentPage().polling.setChecked(True)
        next_page(wizard)
        wizard.currentPage().home.setText(str(tmp_path / "home"))
        next_page(wizard)
        assert wizard.currentId() == POLLING
        polling = wizard.currentPage()
        polling.url.setText("https://octopus.example.com")
        polling.authentication.setCurrentIndex(1)
        polling.api_key.setText(API_KEY)
        assert not polling.proxy.host.isVisibleTo(wizard)
        polling.proxy.mode.setCurrentIndex(2)  # a custom proxy
        assert polling.proxy.host.isVisibleTo(wizard) and polling.proxy.port.isVisibleTo(wizard)
        polling.proxy.host.setText("proxy.example.com")
        polling.proxy.username.setText("me")
        polling.proxy.password.setText(PROXY_PASSWORD)
        next_page(wizard)
        await wait_until(lambda: not wizard.prerequisites.view.running, "the checks end", 60)
        next_page(wizard)
        review = wizard.currentPage()
        assert wizard.currentId() == REVIEW and wizard.answers.style is Style.POLLING
        assert API_KEY not in review.script.toPlainText()
        assert "--apiKey '********'" in review.script.toPlainText()
        assert PROXY_PASSWORD not in review.script.toPlainText()
        assert "--proxyHost proxy.example.com --proxyPort 80" in review.script.toPlainText()
        assert "--proxyPassword '********'" in review.script.toPlainText()
        assert "only listens" in review.blocked.text()
        assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
        ours = [w for page_id in wizard.pageIds() for w in our_widgets(wizard.page(page_id))]
        ours += [wizard.button(b) for b in WIZARD_BUTTONS]
        assert [
            f"{type(w).__name__} {w.objectName()}" for w in ours if not w.accessibleName()
        ] == []
        wizard.reject()
        await window.shutdown()

    qloop.run(scenario(), timeout=120)


def test_try_it_locally_starts_at_the_checks_with_a_loopback_user_instance(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    window = open_main_window(qtbot, qloop)
    window.try_locally.click()

    async def scenario() -> None:
        await wait_until(lambda: window.wizard is not None, "the wizard opens")
        wizard = window.wizard
        assert wizard.currentId() == PREREQUISITES
        assert wizard.answers.local_only and wizard.manager == "supervisor"
        await wait_until(lambda: not wizard.prerequisites.view.running, "the checks end", 60)
        next_page(wizard)
        script = wizard.currentPage().script.toPlainText()
        assert "--listenIpAddress 127.0.0.1" in script and "--trust" not in script
        wizard.reject()
        await window.shutdown()

    qloop.run(scenario(), timeout=120)


@pytest.mark.slow
def test_a_failed_install_rolls_back_then_retry_works_and_closing_mid_install_cancels(
    qtbot: QtBot,
    qloop: QtLoop,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = open_main_window(qtbot, qloop)
    wizard = qloop.run(window.open_setup())
    assert wizard is not None
    real_install = setup_wizard.install
    failures = iter([True])

    def first_install_fails(plan, *args, **kwargs):  # its fourth command fails, once
        if next(failures, False):
            steps = list(plan.steps)
            steps[3] = Step(steps[3].title, ("configure", "--instance", "Tentacle", "--port", "0"))
            plan = replace(plan, steps=tuple(steps))
        return real_install(plan, *args, **kwargs)

    monkeypatch.setattr(setup_wizard, "install", first_install_fails)
    home = tmp_path / "home"

    async def scenario() -> None:
        next_page(wizard)
        wizard.currentPage().home.setText(str(home))
        next_page(wizard)
        wizard.currentPage().port.setText(str(free_port()))
        wizard.currentPage().thumbprint.setText(THUMBPRINT)
        next_page(wizard)
        await wait_until(lambda: not wizard.prerequisites.view.running, "the checks end", 60)
        next_page(wizard)
        next_page(wizard)
        page = wizard.install_page
        page.run.click()
        await wait_until(lambda: page.result is not None, "the first install ends", 120)
        assert page.result.outcome.value == "failed" and page.result.failed_step == 3
        assert "Everything this installation created was removed" in page.status.text(), (
            page.log.toPlainText()
        )
        assert "Rolled back" in page.log.toPlainText()
        assert not home.exists() and InstanceRegistry().list_instances() == []
        assert page.run.text() == "&Retry" and page.run.isEnabled()

        page.run.click()  # nothing re-typed: the same answers, now without the fault
        await wait_until(lambda: page.status.text().startswith("Step"), "it runs again")
        wizard.reject()  # closing mid-install asks first
        await wait_until(lambda: wizard._confirmation is not None, "the question")
        wizard._confirmation.button(QMessageBox.StandardButton.Yes).click()
        await wait_until(lambda: not wizard.isVisible(), "cancelled and closed", 120)
        assert page.result is not None and page.result.outcome.value == "cancelled"
        assert page.result.not_undone == ()
        await window.shutdown()

    try:
        qloop.run(scenario(), timeout=300)
    finally:
        if InstanceRegistry().list_instances():
            run_tentacle("service", "--instance=Tentacle", "--stop", "--uninstall")
        kill_strays(tmp_path)
    assert not home.exists() and InstanceRegistry().list_instances() == []
