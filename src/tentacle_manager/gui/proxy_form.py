"""The proxy fields, shared by the setup wizard's polling page and the proxy settings dialog.

No proxy, the system's proxy, or a custom one; the host and port show only for a custom
proxy and the credentials only when a proxy is used. An empty password means "keep the one
stored": the stored one is never read back into a widget.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from tentacle_manager.gui.widgets import named
from tentacle_manager.setup.answers import ProxyAnswers, ProxyMode

MODES = (
    ("No proxy", ProxyMode.NONE),
    ("The system's proxy", ProxyMode.DEFAULT),
    ("A custom proxy", ProxyMode.CUSTOM),
)


class ProxyForm:
    """Adds its rows to a form layout; `title` names them for screen readers ("Polling
    proxy host"); `fields` maps the answers' problem names to the widgets."""

    def __init__(self, form: QFormLayout, title: str = "Proxy") -> None:
        self._form = form
        self.mode = named(QComboBox(), title)
        for label, mode in MODES:
            self.mode.addItem(label, mode)
        self.host = _line(f"{title} host")
        self.port = _line(f"{title} port")
        self.username = _line(f"{title} username")
        self.password = _line(f"{title} password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        for widget in self.widgets:
            label = named(QLabel(f"{widget.accessibleName()}:"), f"{widget.accessibleName()} label")
            label.setBuddy(widget)
            form.addRow(label, widget)
        self.mode.currentIndexChanged.connect(self._show_fields)

    @property
    def widgets(self) -> tuple[QWidget, ...]:
        return (self.mode, self.host, self.port, self.username, self.password)

    @property
    def fields(self) -> dict[str, QWidget]:
        """Which widget a problem with each field should focus."""
        return {
            "proxy_host": self.host,
            "proxy_port": self.port,
            "proxy_username": self.username,
        }

    def selected_mode(self) -> ProxyMode:
        return ProxyMode(self.mode.currentData())  # Qt hands the enum back as a str

    def fill(self, proxy: ProxyAnswers) -> None:
        self.mode.setCurrentIndex(self.mode.findData(proxy.mode))
        self.host.setText(proxy.host)
        self.port.setText(proxy.port)
        self.username.setText(proxy.username)
        self.password.setText(proxy.password)
        self._show_fields()

    def read(self) -> ProxyAnswers:
        mode = self.selected_mode()
        used = mode is not ProxyMode.NONE
        return ProxyAnswers(
            mode,
            self.host.text().strip(),
            self.port.text().strip(),
            self.username.text().strip() if used else "",
            self.password.text() if used else "",
        )

    def _show_fields(self) -> None:
        mode = self.selected_mode()
        for widget, shown in (
            (self.host, mode is ProxyMode.CUSTOM),
            (self.port, mode is ProxyMode.CUSTOM),
            (self.username, mode is not ProxyMode.NONE),
            (self.password, mode is not ProxyMode.NONE),
        ):
            self._form.setRowVisible(widget, shown)


def _line(name: str) -> QLineEdit:
    return named(QLineEdit(), name)
