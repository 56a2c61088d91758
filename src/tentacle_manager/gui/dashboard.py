"""The dashboard: one instance at a glance (reference section 4.3) and its service controls.

What Tentacle's dashboard shows, plus what it hides and users then go looking for: the agent's
version and whether the manager can actually talk to it. Everything that touches the disk or
a service manager runs in an executor; the agent is reached through `AgentConnection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tentacle_manager.cli.verbs.service import INHERITED_VARIABLES, agent_command
from tentacle_manager.contracts import ProblemsError
from tentacle_manager.gui import spawn
from tentacle_manager.gui.agent_connection import (
    AgentConnection,
    ConnectionState,
    ConnectionStatus,
    missing_configuration,
)
from tentacle_manager.gui.widgets import named
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import DEFAULT_INSTANCE_NAME
from tentacle_manager.instances.tentacle_config import (
    CommunicationStyle,
    ProxyKind,
    ProxySettings,
    TentacleConfig,
)
from tentacle_manager.platform.services.choose import choose_manager
from tentacle_manager.platform.services.spec import (
    ServiceError,
    ServiceManager,
    ServiceSpec,
    ServiceStatus,
)

SERVICE_POLL_INTERVAL = 3.0
GREEN, RED, AMBER, GREY = "#388838", "#b3261e", "#9a6700", "#747474"
ACTIONS = {
    "start": "Starting...",
    "stop": "Stopping...",
    "restart": "Restarting...",
    "reinstall": "Reinstalling...",
}

# --- what the instance's files say (blocking; run in an executor) -------------------------------


@dataclass(frozen=True)
class InstanceFacts:
    home: Path | None = None
    logs: Path | None = None
    thumbprint: str | None = None
    mode: str = ""
    trust: str = ""
    proxy: str = ""
    problem: InstanceError | None = None


def read_facts(instance: Instance) -> InstanceFacts:
    problem = missing_configuration(instance)
    if problem is not None:
        return InstanceFacts(problem=problem)
    try:
        config = instance.config()
    except InstanceError as error:
        return InstanceFacts(problem=error)
    home = config.home
    return InstanceFacts(
        home=home,
        logs=None if home is None else HomeLayout(home).logs,
        thumbprint=config.certificate_thumbprint,
        mode=communication_mode(config),
        trust=trust_sentence(config),
        proxy=proxy_sentence(config),
    )


def _polled_addresses(config: TentacleConfig) -> list[str]:
    return [
        server.address or server.thumbprint
        for server in config.trusted_servers
        if server.communication_style is CommunicationStyle.TENTACLE_ACTIVE
    ]


def communication_mode(config: TentacleConfig) -> str:
    """Tentacle's rule: Polling if any trusted server is polled, else Listening; we also say
    when the Tentacle does neither."""
    if _polled_addresses(config):
        return "Polling"
    return "Not listening" if config.no_listen else "Listening"


def trust_sentence(config: TentacleConfig) -> str:
    """How servers reach this Tentacle and how many it trusts, in one plain sentence."""
    polled = _polled_addresses(config)
    if polled:
        reach = f"Polling {_join(polled)}"
    elif config.no_listen:
        reach = "Not listening for connections"
    else:
        where = f" on address {config.listen_ip}" if config.listen_ip else ""
        reach = f"Listening on port {config.port}{where}"
    count = len(config.trusted_servers)
    if count == 0:
        trusted = "no Octopus Server is trusted yet"
    elif count == 1:
        trusted = "1 Octopus Server is trusted"
    else:
        trusted = f"{count} Octopus Servers are trusted"
    return f"{reach}; {trusted}."


def proxy_sentence(config: TentacleConfig) -> str:
    """Tentacle Manager's proxy status (BuildProxyStatus): web requests, then polling if any."""
    sentence = f"Tentacle {_proxy_use(config.proxy(ProxyKind.HTTP))} for web requests"
    if _polled_addresses(config):
        polling = _proxy_use(config.proxy(ProxyKind.POLLING))
        sentence += f", and {polling} to poll the Octopus Server"
    return sentence + "."


def _proxy_use(proxy: ProxySettings) -> str:
    if proxy.host:
        return "is using a custom proxy server"
    if proxy.use_default_proxy:
        credentials = " with custom credentials" if proxy.username else ""
        return f"is using the default proxy server{credentials}"
    return "is not using a proxy server"


def _join(items: list[str]) -> str:
    """Tentacle's plural form: 'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# --- the service (blocking; run in an executor) ------------------------------------------------


@dataclass(frozen=True)
class ServiceReading:
    text: str
    colour: str
    actions: frozenset[str] = frozenset()
    error: str = ""


READING = ServiceReading("Reading...", GREY)
_READINGS = {
    ServiceStatus.RUNNING: ServiceReading(
        "Running", GREEN, frozenset({"stop", "restart", "reinstall"})
    ),
    ServiceStatus.STOPPED: ServiceReading("Stopped", RED, frozenset({"start", "reinstall"})),
    ServiceStatus.FAILED: ServiceReading(
        "Failed", RED, frozenset({"start", "restart", "reinstall"})
    ),
    ServiceStatus.STARTING: ServiceReading("Starting", AMBER),
    ServiceStatus.STOPPING: ServiceReading("Stopping", AMBER),
    ServiceStatus.NOT_INSTALLED: ServiceReading(
        "Not installed",
        GREY,
        frozenset({"reinstall"}),
        error="Reinstall installs and starts it (`tentacle service --install --start`).",
    ),
}


def service_spec(instance: Instance) -> ServiceSpec:
    """The spec `tentacle service` builds for this instance, so both name the same service."""
    selector = (
        f"--instance={instance.name}" if instance.name else f"--config={instance.config_path}"
    )
    return ServiceSpec.create(
        instance=instance.name,
        config_path=instance.config_path,
        argv=(*agent_command(), selector, "--noninteractive"),
        environment={k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ},
    )


def read_service(manager: ServiceManager, instance: Instance) -> ServiceReading:
    try:
        return _READINGS[manager.status(service_spec(instance))]
    except (ServiceError, ProblemsError, OSError) as error:
        return ServiceReading("Unknown", GREY, error=str(error))


def control_service(manager: ServiceManager, instance: Instance, action: str) -> None:
    """Start, stop, restart or reinstall; raises ServiceError (or a spec or OS error) when it
    did not."""
    spec = service_spec(instance)
    if action != "reinstall":
        getattr(manager, action)(spec)
        return
    for allowed_to_fail in (manager.stop, manager.uninstall):  # as Tentacle Manager does
        with contextlib.suppress(ServiceError):
            allowed_to_fail(spec)
    manager.install(spec)
    manager.start(spec)


# --- the view ------------------------------------------------------------------------------------


def _caption(text: str) -> QLabel:
    return named(QLabel(text), text.rstrip(":"))


def _value(name: str) -> QLabel:
    label = named(QLabel(), name)
    label.setWordWrap(True)
    return label


def _button(text: str, name: str, on_click: Callable[[], object]) -> QPushButton:
    button = named(QPushButton(text), name)
    button.clicked.connect(on_click)
    return button


def _show(label: QLabel, text: str, colour: str | None = None) -> None:
    label.setText(text)
    label.setStyleSheet(f"color: {colour};" if colour else "")
    label.setVisible(bool(text))


class ServiceBox(QGroupBox):
    """Status of the service with Start, Stop and Restart; the error text of a failed action
    stays visible until the next action."""

    action_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__("Service")
        named(self, "Service")
        self._busy = False
        self.status = _value("Service status")
        self.error = _value("Service error")
        self.buttons = {
            action: _button(
                action.capitalize(),
                f"{action.capitalize()} service",
                functools.partial(self.action_requested.emit, action),
            )
            for action in ACTIONS
        }
        row = QHBoxLayout()
        for button in self.buttons.values():
            row.addWidget(button)
        row.addStretch()
        form = QFormLayout(self)
        form.addRow(_caption("Status:"), self.status)
        form.addRow(row)
        form.addRow(self.error)
        self.render(READING)

    def render(self, reading: ServiceReading) -> None:
        """Show a polled reading; ignored while an action runs, which ends with its own."""
        if self._busy:
            return
        _show(self.status, reading.text, reading.colour)
        _show(self.error, reading.error, GREY)
        for action, button in self.buttons.items():
            button.setEnabled(action in reading.actions)

    def begin(self, action: str) -> None:
        self._busy = True
        _show(self.status, ACTIONS[action], AMBER)
        _show(self.error, "")
        for button in self.buttons.values():
            button.setEnabled(False)

    def end(self, reading: ServiceReading, error: str) -> None:
        self._busy = False
        self.render(reading)
        if error:
            _show(self.error, error, RED)


_STATE_COLOURS = {
    ConnectionState.CONNECTED: GREEN,
    ConnectionState.AGENT_DOWN: RED,
    ConnectionState.CERTIFICATE_REFUSED: RED,
    ConnectionState.WRONG_AGENT: RED,
    ConnectionState.INSTANCE_PROBLEM: AMBER,
}


class AgentBox(QGroupBox):
    """Whether the manager can talk to the agent, why not, what to do, and a Retry button."""

    retry_requested = Signal()

    def __init__(self) -> None:
        super().__init__("Agent")
        named(self, "Agent")
        self.state = _value("Connection state")
        self.message = _value("Connection message")
        self.remedy = _value("Connection remedy")
        self.version = _value("Agent version")
        self.retry = _button("Retry", "Retry connection", self.retry_requested.emit)
        row = QHBoxLayout()
        row.addWidget(self.state)
        row.addWidget(self.retry)
        row.addStretch()
        form = QFormLayout(self)
        form.addRow(_caption("Connection:"), row)
        form.addRow(self.message)
        form.addRow(self.remedy)
        form.addRow(_caption("Version:"), self.version)

    def render(self, status: ConnectionStatus) -> None:
        colour = _STATE_COLOURS.get(status.state, GREY)
        _show(self.state, status.state.value.capitalize(), colour)
        self.state.setToolTip(status.detail)
        _show(self.message, status.message)
        _show(self.remedy, status.remedy)
        self.version.setText(status.health.version if status.health else "Unknown")


class CommunicationBox(QGroupBox):
    def __init__(self) -> None:
        super().__init__("Communication")
        named(self, "Communication")
        self.mode = _value("Communication mode")
        self.trust = _value("Trust")
        self.proxy = _value("Proxy")
        self.change_proxy = named(QPushButton("C&hange..."), "Change the proxy settings")
        proxy_row = QHBoxLayout()
        proxy_row.addWidget(self.proxy, 1)
        proxy_row.addWidget(self.change_proxy)
        form = QFormLayout(self)
        form.addRow(_caption("Mode:"), self.mode)
        form.addRow(_caption("Trust:"), self.trust)
        form.addRow(_caption("Proxy:"), proxy_row)

    def render(self, facts: InstanceFacts) -> None:
        self.mode.setText(facts.mode)
        self.trust.setText(facts.trust)
        self.proxy.setText(facts.proxy)
        self.change_proxy.setEnabled(bool(facts.proxy))


class IdentityBox(QGroupBox):
    """The thumbprint users compare with the Octopus web portal, selectable and copyable."""

    def __init__(self) -> None:
        super().__init__("Identity")
        named(self, "Identity")
        self.thumbprint = named(QLineEdit(), "Thumbprint")
        self.thumbprint.setReadOnly(True)
        self.copy = _button("Copy", "Copy thumbprint", self._copy)
        hint = _value("Thumbprint hint")
        hint.setText("This should match the thumbprint shown for this machine in Octopus Deploy.")
        row = QHBoxLayout()
        row.addWidget(self.thumbprint, 1)
        row.addWidget(self.copy)
        form = QFormLayout(self)
        form.addRow(_caption("Thumbprint:"), row)
        form.addRow(hint)

    def render(self, facts: InstanceFacts) -> None:
        self.thumbprint.setText(facts.thumbprint or "No certificate yet")
        self.copy.setEnabled(facts.thumbprint is not None)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.thumbprint.text())


class FoldersBox(QGroupBox):
    """The home and logs folders, each with an Open button for the desktop's file manager."""

    def __init__(self) -> None:
        super().__init__("Folders")
        named(self, "Folders")
        self.home = _value("Home folder")
        self.logs = _value("Logs folder")
        self.open_home = _button("Open", "Open home folder", lambda: self._open(self.home))
        self.open_logs = _button("Open", "Open logs folder", lambda: self._open(self.logs))
        self.error = _value("Folder error")
        form = QFormLayout(self)
        form.addRow(_caption("Home:"), self._row(self.home, self.open_home))
        form.addRow(_caption("Logs:"), self._row(self.logs, self.open_logs))
        form.addRow(self.error)

    @staticmethod
    def _row(label: QLabel, button: QPushButton) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(label, 1)
        row.addWidget(button)
        return row

    def render(self, facts: InstanceFacts) -> None:
        for label, button, path in (
            (self.home, self.open_home, facts.home),
            (self.logs, self.open_logs, facts.logs),
        ):
            label.setText("Not set" if path is None else str(path))
            button.setEnabled(path is not None)
        _show(self.error, "")

    def _open(self, label: QLabel) -> None:
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(label.text())):
            _show(self.error, f"Could not open {label.text()} in the file manager.", RED)


class Dashboard(QWidget):
    """The first tab of the main window: one instance, kept current while it is shown."""

    proxy_change_requested = Signal()

    def __init__(self, connection: AgentConnection) -> None:
        super().__init__()
        named(self, "Dashboard")
        self._connection = connection
        self._instance: Instance | None = None
        self._watching: asyncio.Task[None] | None = None
        self._service_manager: ServiceManager | None = None
        self.title = named(QLabel(), "Instance name")
        self.title.setStyleSheet("font-size: 18pt; font-weight: bold;")
        self.problem = _value("Instance problem")
        self.service = ServiceBox()
        self.agent = AgentBox()
        self.communication = CommunicationBox()
        self.identity = IdentityBox()
        self.folders = FoldersBox()
        layout = QVBoxLayout(self)
        for widget in (self.title, self.problem, self.service, self.agent):
            layout.addWidget(widget)
        for widget in (self.communication, self.identity, self.folders):
            layout.addWidget(widget)
        layout.addStretch()
        self.agent.render(connection.status)
        connection.subscribe(self.agent.render)
        self.agent.retry_requested.connect(lambda: spawn(self._retry()))
        self.service.action_requested.connect(lambda action: spawn(self._perform(action)))
        self.communication.change_proxy.clicked.connect(self.proxy_change_requested.emit)

    @property
    def instance(self) -> Instance | None:
        return self._instance

    async def service_running(self) -> bool:
        instance = self._instance
        return instance is not None and (await self._read_service(instance)).text == "Running"

    async def service_manager_name(self) -> str:
        return (await self._manager()).name

    async def refresh(self) -> None:
        """Read the instance's files again (after a change made through a dialog)."""
        if self._instance is not None:
            await self.show_instance(self._instance)

    async def show_instance(self, instance: Instance) -> None:
        """Show `instance` and watch its service until another one is shown."""
        await self.stop_watching()
        self._instance = instance
        name = instance.name or str(instance.config_path)
        suffix = " (default instance)" if name == DEFAULT_INSTANCE_NAME else ""
        self.title.setText(name + suffix)
        self.service.end(READING, "")  # an action still running for the last instance is moot
        self._render(InstanceFacts())
        facts = await asyncio.get_running_loop().run_in_executor(None, read_facts, instance)
        if self._instance is not instance:
            return
        self._render(facts)
        self._watching = spawn(self._watch_service(instance))

    def _render(self, facts: InstanceFacts) -> None:
        problem = facts.problem
        _show(self.problem, "" if problem is None else problem.one_line(), RED)
        self.communication.render(facts)
        self.identity.render(facts)
        self.folders.render(facts)

    async def stop_watching(self) -> None:
        """Stop polling the service (a failure of the poll was reported when it happened)."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.wait([self._watching])
            self._watching = None

    async def _watch_service(self, instance: Instance) -> None:
        while True:
            self.service.render(await self._read_service(instance))
            await asyncio.sleep(SERVICE_POLL_INTERVAL)

    async def _manager(self) -> ServiceManager:
        """Chosen once: the machine's prerequisites do not change while the window is open, and
        checking them can mean running programs (sudo for systemd)."""
        if self._service_manager is None:
            loop = asyncio.get_running_loop()
            self._service_manager = await loop.run_in_executor(None, choose_manager)
        return self._service_manager

    async def _read_service(self, instance: Instance) -> ServiceReading:
        try:
            manager = await self._manager()
        except ServiceError as error:
            return ServiceReading("Unknown", GREY, error=str(error))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, read_service, manager, instance)

    async def _perform(self, action: str) -> None:
        instance = self._instance
        if instance is None:
            return
        self.service.begin(action)
        try:
            manager = await self._manager()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, control_service, manager, instance, action)
            error = ""
        except (ServiceError, ProblemsError, InstanceError, OSError) as failure:
            error = str(failure)
        reading = await self._read_service(instance)
        if self._instance is not instance:
            return
        self.service.end(reading, error)
        await self._connection.retry()

    async def _retry(self) -> None:
        self.agent.retry.setEnabled(False)
        try:
            await self._connection.retry()
        finally:
            self.agent.retry.setEnabled(True)
