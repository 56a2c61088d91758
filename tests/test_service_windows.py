"""The Windows service manager: this machine has no service control manager, so sc.exe is
replaced by a script that records the exact commands and answers with real-looking output."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tentacle_manager.platform.services import (
    ServiceError,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    WindowsServiceManager,
)
from tentacle_manager.platform.services.spec import Completed
from tentacle_manager.platform.services.windows import ELEVATION_MESSAGE, parse_query

EXE = "C:\\Program Files\\Octopus Deploy\\Tentacle\\python.exe"
NAME = "OctopusDeploy Tentacle: X"
SUCCESS = Completed(0, "[SC] ChangeServiceConfig2 SUCCESS\r\n")


def query_output(name: str, state: str, win32_exit: int = 0, service_exit: int = 0) -> str:
    return f"""
SERVICE_NAME: {name}
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : {state}
                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : {win32_exit}  ({win32_exit:#x})
        SERVICE_EXIT_CODE  : {service_exit}  ({service_exit:#x})
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x7d0
"""


def failed(call: str, code: int, text: str) -> Completed:
    return Completed(code, f"[SC] {call} FAILED {code}:\r\n\r\n{text}\r\n\r\n")


RUNNING = Completed(0, query_output(NAME, "4  RUNNING"))
STOPPED = Completed(0, query_output(NAME, "1  STOPPED"))
START_PENDING = Completed(0, query_output(NAME, "2  START_PENDING"))
STOP_PENDING = Completed(0, query_output(NAME, "3  STOP_PENDING"))
MISSING = failed(
    "EnumQueryServicesStatus:OpenService",
    1060,
    "The specified service does not exist as an installed service.",
)


class ScExe:
    """Records every sc.exe command; answers per (verb, service) from a queue whose last
    answer repeats, and with SUCCESS when nothing was scripted."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.replies: dict[tuple[str, str], list[Completed]] = {}

    def reply(self, verb: str, name: str, *answers: Completed) -> None:
        self.replies[(verb, name)] = list(answers)

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.commands.append(list(argv))
        queue = self.replies.get((argv[1], argv[2]))
        if not queue:
            return SUCCESS
        return queue.pop(0) if len(queue) > 1 else queue[0]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def sc() -> ScExe:
    return ScExe()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(sc: ScExe, clock: Clock) -> WindowsServiceManager:
    return WindowsServiceManager(
        sc, elevated=lambda: True, on_windows=True, clock=clock.time, sleep=clock.sleep
    )


def spec_for(instance: str = "X", **fields: object) -> ServiceSpec:
    argv = [EXE, "-m", "tentacle_manager.cli.main", "agent", f"--instance={instance}"]
    return ServiceSpec.create(instance=instance, argv=argv, **fields)


def recovery_commands(name: str) -> list[list[str]]:
    return [
        ["sc.exe", "description", name, "Octopus Deploy: Tentacle deployment agent"],
        [
            "sc.exe",
            "failure",
            name,
            "reset=",
            "86400",
            "actions=",
            "restart/60000/restart/60000/restart/60000",
        ],
        ["sc.exe", "failureflag", name, "1"],
    ]


def test_install_creates_with_delayed_start_dependencies_and_recovery(
    manager: WindowsServiceManager, sc: ScExe
) -> None:
    sc.reply("query", NAME, MISSING)
    manager.install(spec_for("X"))
    create = [
        "sc.exe",
        "create",
        NAME,
        "binPath=",
        f'"{EXE}" -m tentacle_manager.cli.main agent --instance=X',
        "DisplayName=",
        NAME,
        "depend=",
        "LanmanWorkstation/TCPIP",
        "start=",
        "delayed-auto",
        "obj=",
        "LocalSystem",
    ]
    assert sc.commands == [["sc.exe", "query", NAME], create, *recovery_commands(NAME)]
    # The command line Windows receives, in Tentacle's own quoting style:
    assert subprocess.list2cmdline(create) == (
        'sc.exe create "OctopusDeploy Tentacle: X" binPath= "\\"C:\\Program Files\\Octopus '
        'Deploy\\Tentacle\\python.exe\\" -m tentacle_manager.cli.main agent --instance=X" '
        'DisplayName= "OctopusDeploy Tentacle: X" depend= LanmanWorkstation/TCPIP '
        "start= delayed-auto obj= LocalSystem"
    )


def test_names_and_argument_quoting(manager: WindowsServiceManager, sc: ScExe) -> None:
    sc.reply("query", "OctopusDeploy Tentacle", MISSING)
    manager.install(spec_for("Tentacle"))
    assert sc.commands[1][2] == "OctopusDeploy Tentacle"
    spaced = ServiceSpec.create(instance="My Inst", argv=[EXE, "--instance=My Inst", 'a"b'])
    sc.reply("query", "OctopusDeploy Tentacle: My Inst", MISSING)
    manager.install(spaced)
    assert f'"{EXE}" "--instance=My Inst" a\\"b' in sc.commands[-4]


def test_run_as_account_password_is_passed_but_never_shown(
    manager: WindowsServiceManager, sc: ScExe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = spec_for("X", username=".\\svc-tentacle", password="hunter2-secret")
    sc.reply("query", NAME, MISSING)
    sc.reply(
        "create",
        NAME,
        failed("CreateService", 1057, "The account name is invalid: hunter2-secret"),
    )
    with pytest.raises(ServiceError) as raised:
        manager.install(spec)
    assert sc.commands[1][-4:] == ["obj=", ".\\svc-tentacle", "password=", "hunter2-secret"]
    shown = str(raised.value) + caplog.text + repr(spec) + str(spec)
    assert "hunter2-secret" not in shown
    assert "password= ********" in caplog.text


def test_dependency_must_exist(manager: WindowsServiceManager, sc: ScExe) -> None:
    sc.reply("query", NAME, MISSING)
    sc.reply("query", "NoSuchService", MISSING)
    with pytest.raises(ServiceSpecError) as raised:
        manager.install(spec_for("X", depend_on="NoSuchService"))
    assert raised.value.problems == {
        "depend_on": "Unable to set dependency on service 'NoSuchService' as no service was "
        "found with that name."
    }
    assert [command[1] for command in sc.commands] == ["query", "query"]  # nothing created

    sc.commands.clear()
    sc.reply("query", "MSSQLSERVER", Completed(0, query_output("MSSQLSERVER", "4  RUNNING")))
    manager.install(spec_for("X", depend_on="MSSQLSERVER"))
    assert "LanmanWorkstation/TCPIP/MSSQLSERVER" in sc.commands[2]


def test_install_over_an_existing_service_reconfigures_it(
    manager: WindowsServiceManager, sc: ScExe
) -> None:
    sc.reply("query", NAME, RUNNING, STOP_PENDING, STOPPED)
    sc.reply("stop", NAME, STOP_PENDING)
    manager.install(spec_for("X", username="NT AUTHORITY\\NetworkService"))
    config = sc.commands[4]
    assert [command[1] for command in sc.commands] == [
        "query",
        "stop",
        "query",
        "query",
        "config",
        "description",
        "failure",
        "failureflag",
    ]
    assert config[:4] == ["sc.exe", "config", NAME, "binPath="]
    assert config[-2:] == ["obj=", "NT AUTHORITY\\NetworkService"]


def test_start_polls_until_running(manager: WindowsServiceManager, sc: ScExe, clock: Clock) -> None:
    sc.reply("start", NAME, START_PENDING)
    sc.reply("query", NAME, START_PENDING, START_PENDING, RUNNING)
    manager.start(spec_for("X"))
    assert sc.commands == [["sc.exe", "start", NAME]] + [["sc.exe", "query", NAME]] * 3
    assert clock.sleeps == [0.3, 0.3]


def test_start_of_a_running_service_is_a_no_op(manager: WindowsServiceManager, sc: ScExe) -> None:
    sc.reply("start", NAME, failed("StartService", 1056, "An instance of the service is running."))
    sc.reply("query", NAME, RUNNING)
    manager.start(spec_for("X"))
    assert len(sc.commands) == 2


def test_start_failures_raise_with_remedies(manager: WindowsServiceManager, sc: ScExe) -> None:
    sc.reply("start", NAME, MISSING)
    with pytest.raises(ServiceError) as raised:
        manager.start(spec_for("X"))
    assert raised.value.message == (
        f"Start requested for service {NAME}, but no service with this name was found."
    )

    sc.reply(
        "start",
        NAME,
        failed("StartService", 1069, "The service did not start due to a logon failure."),
    )
    with pytest.raises(ServiceError) as raised:
        manager.start(spec_for("X"))
    assert "failed with error 1069" in raised.value.message
    assert "Log on as a service" in raised.value.remedy

    sc.reply("start", NAME, START_PENDING)
    sc.reply("query", NAME, Completed(0, query_output(NAME, "1  STOPPED", 1066, 1)))
    with pytest.raises(ServiceError) as raised:
        manager.start(spec_for("X"))
    assert (
        "stopped while starting (WIN32_EXIT_CODE 1066, SERVICE_EXIT_CODE 1)" in raised.value.message
    )


def test_start_gives_up_after_the_timeout(
    manager: WindowsServiceManager, sc: ScExe, clock: Clock
) -> None:
    sc.reply("start", NAME, START_PENDING)
    sc.reply("query", NAME, START_PENDING)
    with pytest.raises(ServiceError, match="did not reach RUNNING within 45 s"):
        manager.start(spec_for("X"))
    assert 44.7 <= sum(clock.sleeps) <= 45.3


def test_stop_and_uninstall(manager: WindowsServiceManager, sc: ScExe) -> None:
    sc.reply("stop", NAME, failed("ControlService", 1062, "The service has not been started."))
    manager.stop(spec_for("X"))
    assert sc.commands == [["sc.exe", "stop", NAME]]  # nothing to wait for

    sc.commands.clear()
    sc.reply("stop", NAME, STOP_PENDING)
    sc.reply("query", NAME, RUNNING, STOP_PENDING, STOPPED)
    manager.uninstall(spec_for("X"))
    assert sc.commands == [
        ["sc.exe", "query", NAME],
        ["sc.exe", "stop", NAME],
        ["sc.exe", "query", NAME],
        ["sc.exe", "query", NAME],
        ["sc.exe", "delete", NAME],
    ]

    sc.commands.clear()
    sc.reply("query", NAME, MISSING)
    manager.uninstall(spec_for("X"))
    assert sc.commands == [["sc.exe", "query", NAME]]


def test_status_from_query_output(manager: WindowsServiceManager, sc: ScExe) -> None:
    cases = [
        (RUNNING, ServiceStatus.RUNNING),
        (STOPPED, ServiceStatus.STOPPED),
        (START_PENDING, ServiceStatus.STARTING),
        (STOP_PENDING, ServiceStatus.STOPPING),
        (Completed(0, query_output(NAME, "1  STOPPED", 1066, 3)), ServiceStatus.FAILED),
        (Completed(0, query_output(NAME, "1  STOPPED", 1077)), ServiceStatus.STOPPED),
        (MISSING, ServiceStatus.NOT_INSTALLED),
    ]
    for answer, expected in cases:
        sc.reply("query", NAME, answer)
        assert manager.status(spec_for("X")) is expected
    assert parse_query(RUNNING.stdout).win32_exit_code == 0
    with pytest.raises(ServiceError, match="Could not read a service state"):
        parse_query("[SC] something unexpected")


def test_elevation_is_required_for_changes_not_for_status(sc: ScExe) -> None:
    manager = WindowsServiceManager(sc, elevated=lambda: False, on_windows=True)
    for action in (manager.install, manager.uninstall, manager.start, manager.stop):
        with pytest.raises(ServiceError) as raised:
            action(spec_for("X"))
        assert raised.value.message == ELEVATION_MESSAGE
    assert sc.commands == []
    sc.reply("query", NAME, RUNNING)
    assert manager.status(spec_for("X")) is ServiceStatus.RUNNING


def test_access_denied_and_a_half_created_service_is_deleted(
    manager: WindowsServiceManager, sc: ScExe
) -> None:
    sc.reply("query", NAME, MISSING)
    sc.reply("description", NAME, failed("ChangeServiceConfig2", 5, "Access is denied."))
    with pytest.raises(ServiceError) as raised:
        manager.install(spec_for("X"))
    assert raised.value.remedy == ELEVATION_MESSAGE
    assert sc.commands[-1] == ["sc.exe", "delete", NAME]


def test_specs_windows_cannot_honour(manager: WindowsServiceManager, sc: ScExe) -> None:
    spec = ServiceSpec.create(
        instance="X",
        argv=["/usr/bin/python3"],
        environment={"A": "1"},
        working_directory="/srv",
    )
    with pytest.raises(ServiceSpecError) as raised:
        manager.install(spec)
    assert set(raised.value.problems) == {"argv", "environment", "working_directory"}
    assert sc.commands == []


def test_prerequisites(sc: ScExe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = WindowsServiceManager(sc, on_windows=False).check_prerequisites()
    assert problem.message == "The Windows service manager exists only on Windows."
    monkeypatch.setenv("PATH", str(tmp_path))
    [problem] = WindowsServiceManager(sc, on_windows=True).check_prerequisites()
    assert problem.message == "sc.exe was not found on PATH."
    (tmp_path / "sc.exe").write_text("")
    (tmp_path / "sc.exe").chmod(0o755)
    not_admin = WindowsServiceManager(sc, elevated=lambda: False, on_windows=True)
    assert [p.message for p in not_admin.check_prerequisites()] == [ELEVATION_MESSAGE]
    admin = WindowsServiceManager(sc, elevated=lambda: True, on_windows=True)
    assert admin.check_prerequisites() == []
