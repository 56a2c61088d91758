"""The proxy settings dialog behind the dashboard's proxy line (Tentacle Manager's CHANGE).

The web proxy, and for a polling instance the polling proxy, as the stored settings say; Apply
runs the `proxy` / `polling-proxy` commands (restarting the service only if it runs) and shows
their output, masked. A bad field is named with its rule and nothing runs.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.gui import spawn
from tentacle_manager.gui.proxy_form import ProxyForm
from tentacle_manager.gui.widgets import ERROR_STYLE, monospace, named
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.tentacle_config import ProxyKind, TentacleConfig
from tentacle_manager.setup.install import Event, OutputLine, run_in_order
from tentacle_manager.setup.proxy_change import current_proxy, plan_proxy_change


class ProxyDialog(QDialog):
    changed = Signal()

    def __init__(
        self,
        instance: Instance,
        config: TentacleConfig,
        *,
        polls: bool,
        manager: str,
        running: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Proxy settings")
        named(self, "Proxy settings")
        self.resize(620, 560)
        self._instance = instance
        self._manager = manager
        self._running = running
        self._task: asyncio.Task[None] | None = None
        self.web = self._section("Web requests", "Web proxy", config, ProxyKind.HTTP)
        self.polling = (
            self._section("Polling the Octopus Server", "Polling proxy", config, ProxyKind.POLLING)
            if polls
            else None
        )
        self.errors = named(QLabel(""), "Problems with the proxy settings")
        self.errors.setStyleSheet(ERROR_STYLE)
        self.errors.setWordWrap(True)
        self.log = monospace("Output of the proxy commands")
        self.status = named(QLabel(""), "Proxy change status")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Close
        )
        self.apply = named(buttons.button(QDialogButtonBox.StandardButton.Apply), "Apply")
        named(buttons.button(QDialogButtonBox.StandardButton.Close), "Close")
        self.apply.clicked.connect(self.start)
        buttons.rejected.connect(self.reject)
        note = "The service is restarted to use them." if running else ""
        layout = QVBoxLayout(self)
        for form in (self.web, self.polling):
            if form is not None:
                layout.addWidget(form.box)
        layout.addWidget(named(QLabel(f"Leave a password empty to keep it. {note}"), "Hint"))
        layout.addWidget(self.errors)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

    def _section(
        self, heading: str, title: str, config: TentacleConfig, kind: ProxyKind
    ) -> ProxyForm:
        box = named(QGroupBox(heading), heading)
        form = ProxyForm(QFormLayout(box), title)
        form.fill(current_proxy(config, kind))
        form.box = box  # type: ignore[attr-defined]
        return form

    def start(self) -> None:
        polling = self.polling.read() if self.polling is not None else None
        try:
            steps = plan_proxy_change(
                self._instance,
                self.web.read(),
                polling,
                manager=self._manager,
                running=self._running,
            )
        except ProblemsError as error:
            self.errors.setText("\n".join(_describe(n, r) for n, r in error.problems.items()))
            return
        self.errors.setText("")
        self.apply.setEnabled(False)
        self.log.clear()
        self._task = spawn(self._apply(steps, tuple(s for step in steps for s in step.secrets)))

    async def _apply(self, steps: tuple, secrets: tuple[str, ...]) -> None:
        failed = await run_in_order(steps, secrets, self._show)
        self.apply.setEnabled(True)
        if failed is None:
            self.status.setText("The proxy settings were changed.")
            self.changed.emit()
        else:
            self.status.setText("The change stopped at a failed step: see its output.")

    def _show(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            self.log.appendPlainText(f"Error: {event.text}" if event.error else event.text)


def _describe(name: str, rule: str) -> str:
    """web_proxy_host -> "Web proxy host: <rule>."""
    section, _, field = name.partition("_proxy_")
    return f"{section.capitalize()} proxy {field}: {rule}."
