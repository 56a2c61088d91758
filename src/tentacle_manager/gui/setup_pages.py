"""The setup wizard's question pages: communication style, storage, listening, polling.

Each page reads its widgets into the wizard's SetupAnswers and lets setup/answers judge them;
Next stays on the page while any field is wrong, and the page lists every bad field with its
rule and puts the cursor in the first. The rules live in setup/answers, not here, so the CLI,
the tests and the wizard agree.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from tentacle_manager.gui.proxy_form import ProxyForm
from tentacle_manager.gui.widgets import ERROR_STYLE, named
from tentacle_manager.platform.firewall import firewall_rule
from tentacle_manager.setup.answers import Page, SetupAnswers, Style

if TYPE_CHECKING:
    from tentacle_manager.gui.setup_wizard import SetupWizard

FIELD_LABELS = {
    "instance": "Instance name",
    "home": "Home folder",
    "app_dir": "Applications folder",
    "listen_port": "Listen port",
    "server_thumbprint": "Octopus Server thumbprint",
    "server_url": "Octopus Server URL",
    "server_comms_port": "Server communications port",
    "api_key": "API key",
    "username": "Username",
    "password": "Password",
    "proxy_host": "Proxy host",
    "proxy_port": "Proxy port",
    "proxy_username": "Proxy username",
}


class QuestionPage(QWizardPage):
    """A page of fields: `fill` shows answers, `read` takes them back, `fields` maps each
    answer field to the widget a problem with it should focus."""

    page: Page

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__()
        self.setTitle(title)
        self.setSubTitle(subtitle)
        named(self, title)
        self.errors = named(QLabel(""), f"Problems on the {title} page")
        self.errors.setStyleSheet(ERROR_STYLE)
        self.errors.setWordWrap(True)
        self.errors.setVisible(False)
        self.fields: dict[str, QWidget] = {}

    def wizard_(self) -> SetupWizard:
        return self.wizard()  # type: ignore[return-value]

    def fill(self, answers: SetupAnswers) -> None: ...

    def read(self, answers: SetupAnswers) -> SetupAnswers:
        return answers

    def initializePage(self) -> None:
        self.fill(self.wizard_().answers)

    def validatePage(self) -> bool:
        answers = self.read(self.wizard_().answers)
        problems = answers.problems(self.page)
        self.show_problems(problems)
        if problems:
            return False
        self.wizard_().answers = answers
        return True

    def show_problems(self, problems: dict[str, str]) -> None:
        lines = [f"{FIELD_LABELS.get(name, name)}: {rule}." for name, rule in problems.items()]
        self.errors.setText("\n".join(lines))
        self.errors.setVisible(bool(lines))
        for name, widget in self.fields.items():
            widget.setAccessibleDescription(problems.get(name, ""))
        first = next((self.fields[name] for name in problems if name in self.fields), None)
        if first is not None:
            first.setFocus()


def _line(name: str, *, secret: bool = False) -> QLineEdit:
    edit = named(QLineEdit(), name)
    if secret:
        edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit


class CommunicationPage(QuestionPage):
    page = Page.COMMUNICATION

    def __init__(self) -> None:
        super().__init__(
            "Communication style",
            "How would you like the Octopus Server and this Tentacle to communicate?",
        )
        self.instance = _line("Instance name")
        self.listening = named(QRadioButton("&Listening Tentacle"), "Listening Tentacle")
        self.polling = named(QRadioButton("&Polling Tentacle"), "Polling Tentacle")
        group = QButtonGroup(self)
        group.addButton(self.listening)
        group.addButton(self.polling)
        self.fields = {"instance": self.instance}
        form = QFormLayout()
        form.addRow(named(QLabel("&Instance name:"), "Instance name label"), self.instance)
        form.labelForField(self.instance).setBuddy(self.instance)  # type: ignore[union-attr]
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for button, text in (
            (self.listening, "The Tentacle listens for the Octopus Server to connect to it."),
            (self.polling, "The Tentacle connects to the Octopus Server and asks it for work."),
        ):
            layout.addWidget(button)
            layout.addWidget(named(QLabel(text), f"{button.accessibleName()} explanation"))
        layout.addStretch()
        layout.addWidget(self.errors)

    def fill(self, answers: SetupAnswers) -> None:
        self.instance.setText(answers.instance)
        (self.listening if answers.style is Style.LISTENING else self.polling).setChecked(True)

    def read(self, answers: SetupAnswers) -> SetupAnswers:
        style = Style.LISTENING if self.listening.isChecked() else Style.POLLING
        renamed = answers.with_instance(self.instance.text().strip())
        return replace(renamed, style=style)


class StoragePage(QuestionPage):
    page = Page.STORAGE

    def __init__(self) -> None:
        super().__init__(
            "Storage", "Where should the Tentacle keep its logs and work, and install applications?"
        )
        self.home = _line("Home folder")
        self.app_dir = _line("Applications folder")
        self.fields = {"home": self.home, "app_dir": self.app_dir}
        self._dialog: QFileDialog | None = None
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # long paths, full width
        for text, edit in (
            ("&Home folder (configuration, logs, work):", self.home),
            ("&Applications folder (default for deployments):", self.app_dir),
        ):
            label = named(QLabel(text), f"{edit.accessibleName()} label")
            label.setBuddy(edit)
            browse = named(QPushButton("Browse..."), f"Browse for the {edit.accessibleName()}")
            browse.clicked.connect(lambda _=False, target=edit: self._browse(target))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(label, row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch()
        layout.addWidget(self.errors)

    def _browse(self, target: QLineEdit) -> None:
        """Opened at the field's own folder (Tentacle Manager always opens the home's)."""
        dialog = QFileDialog(self, f"Choose the {target.accessibleName().lower()}")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setDirectory(_existing_ancestor(Path(target.text() or Path.home())))
        dialog.fileSelected.connect(target.setText)
        self._dialog = dialog
        dialog.open()

    def fill(self, answers: SetupAnswers) -> None:
        self.home.setText(str(answers.home))
        self.app_dir.setText(str(answers.app_dir))

    def read(self, answers: SetupAnswers) -> SetupAnswers:
        return replace(
            answers,
            home=Path(self.home.text().strip()),
            app_dir=Path(self.app_dir.text().strip()),
        )


class ListeningPage(QuestionPage):
    page = Page.LISTENING

    def __init__(self) -> None:
        super().__init__(
            "Listening Tentacle",
            "The port to listen on, and the Octopus Server allowed to connect. The port must be "
            "open in this machine's firewall and any firewall in between.",
        )
        self.port = _line("Listen port")
        self.firewall = named(QCheckBox("Add a &firewall rule for this port"), "Firewall rule")
        self.thumbprint = _line("Octopus Server thumbprint")
        self.thumbprint.setPlaceholderText(
            "40 hexadecimal characters, from the server's setup page"
        )
        self.fields = {"listen_port": self.port, "server_thumbprint": self.thumbprint}
        self.firewall_note = named(QLabel(""), "Firewall note")
        self.firewall_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow(named(QLabel("Listen &port:"), "Listen port label"), self.port)
        form.addRow(self.firewall)
        form.addRow(self.firewall_note)
        form.addRow(named(QLabel("Octopus &thumbprint:"), "Thumbprint label"), self.thumbprint)
        for edit in (self.port, self.thumbprint):
            form.labelForField(edit).setBuddy(edit)  # type: ignore[union-attr]
        hint = named(
            QLabel(
                "The Tentacle accepts connections only from the Octopus Server presenting this "
                "certificate thumbprint. Octopus shows it when you add a Listening Tentacle."
            ),
            "Thumbprint explanation",
        )
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addStretch()
        layout.addWidget(self.errors)

    def fill(self, answers: SetupAnswers) -> None:
        self.port.setText(answers.listen_port)
        self.thumbprint.setText(answers.server_thumbprint)
        rule = firewall_rule(answers.instance, 0)
        self.firewall.setEnabled(rule is not None)
        self.firewall.setChecked(answers.firewall_rule and rule is not None)
        self.firewall_note.setText(
            f"The rule is added with {rule.tool}." if rule else
            "No firewall tool was found here (netsh or ufw): open the port yourself if a "
            "firewall is active."
        )  # fmt: skip

    def read(self, answers: SetupAnswers) -> SetupAnswers:
        return replace(
            answers,
            listen_port=self.port.text().strip(),
            firewall_rule=self.firewall.isChecked(),
            server_thumbprint=self.thumbprint.text().strip(),
        )


class PollingPage(QuestionPage):
    page = Page.POLLING

    def __init__(self) -> None:
        super().__init__(
            "Polling Tentacle",
            "The Octopus Server to poll, the account that registers this machine (never "
            "stored), and the proxy to reach it through.",
        )
        self.url = _line("Octopus Server URL")
        self.comms_port = _line("Server communications port")
        self.authentication = named(QComboBox(), "Authentication")
        self.authentication.addItems(["Username and password", "API key"])
        self.username = _line("Username")
        self.password = _line("Password", secret=True)
        self.api_key = _line("API key", secret=True)  # masked, unlike Tentacle Manager's
        form = QFormLayout()
        for widget in (
            self.url,
            self.comms_port,
            self.authentication,
            self.username,
            self.password,
            self.api_key,
        ):
            label = named(QLabel(f"{widget.accessibleName()}:"), f"{widget.accessibleName()} label")
            label.setBuddy(widget)
            form.addRow(label, widget)
        self.proxy = ProxyForm(form)
        self.fields = {
            "server_url": self.url,
            "server_comms_port": self.comms_port,
            "username": self.username,
            "password": self.password,
            "api_key": self.api_key,
            **self.proxy.fields,
        }
        self._form = form
        self.authentication.currentIndexChanged.connect(self._show_credentials)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch()
        layout.addWidget(self.errors)

    def _show_credentials(self) -> None:
        api_key = self.authentication.currentIndex() == 1
        for widget, shown in ((self.username, not api_key), (self.password, not api_key)):
            self._form.setRowVisible(widget, shown)
        self._form.setRowVisible(self.api_key, api_key)

    def fill(self, answers: SetupAnswers) -> None:
        self.url.setText(answers.server_url)
        self.comms_port.setText(answers.server_comms_port)
        self.authentication.setCurrentIndex(1 if answers.api_key else 0)
        self.username.setText(answers.username)
        self.password.setText(answers.password)
        self.api_key.setText(answers.api_key)
        self.proxy.fill(answers.proxy)
        self._show_credentials()

    def read(self, answers: SetupAnswers) -> SetupAnswers:
        api_key = self.authentication.currentIndex() == 1
        return replace(
            answers,
            server_url=self.url.text().strip(),
            server_comms_port=self.comms_port.text().strip(),
            api_key=self.api_key.text().strip() if api_key else "",
            username="" if api_key else self.username.text().strip(),
            password="" if api_key else self.password.text(),
            proxy=self.proxy.read(),
        )


def _existing_ancestor(path: Path) -> str:
    while not path.exists() and path != path.parent:
        path = path.parent
    return str(path)
