"""The Windows service control manager, driven with sc.exe.

Differences from Tentacle's WindowsServiceConfigurator, all deliberate:

- `start= delayed-auto` instead of `auto`. The agent needs the network, name resolution and, for
  domain accounts, the logon service; services that start in the automatic group race those and
  slow the boot. A delayed start begins shortly after the automatic group has settled, and the
  recovery actions below cover the rare start that still fails.
- Recovery actions, which Tentacle never sets (it relies on its watchdog task): restart after
  60 s, three times, the count reset after a day; `failureflag 1` makes an agent that stops with
  an error exit code count as a failure too, not only a crash.
- Failures of sc.exe raise ServiceError with a remedy keyed on the Win32 error code, instead of
  being logged and ignored; a failed install deletes the half-created service.
- Start and stop wait by polling `sc.exe query`; the clock and sleep are injected so tests do
  not wait.
- The run-as password goes to sc.exe (`obj= ... password= ...`) and is masked in every log line
  and error. sc.exe does not grant the account the "Log on as a service" right that Tentacle
  grants through LSA; a start that fails for that reason (error 1069) says how to grant it.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import PureWindowsPath

from tentacle_manager.platform.services.spec import (
    Completed,
    Problem,
    Runner,
    ServiceError,
    ServiceManagerBase,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    mask_text,
    not_installed_error,
    run_command,
    run_logged,
)

SC = "sc.exe"
BASE_DEPENDENCIES = ("LanmanWorkstation", "TCPIP")
START_TYPE = "delayed-auto"
FAILURE_RESET_SECONDS = 86_400
FAILURE_ACTIONS = "restart/60000/restart/60000/restart/60000"
ELEVATION_MESSAGE = (
    "This command requires elevation. Please re-run from an elevated shell / as a user that is "
    "a member of the local administrators group."
)


class ScState(IntEnum):
    """The STATE numbers sc.exe prints (SERVICE_STOPPED ... SERVICE_PAUSED)."""

    STOPPED = 1
    START_PENDING = 2
    STOP_PENDING = 3
    RUNNING = 4
    CONTINUE_PENDING = 5
    PAUSE_PENDING = 6
    PAUSED = 7


class WinError(IntEnum):
    ACCESS_DENIED = 5
    SERVICE_REQUEST_TIMEOUT = 1053
    SERVICE_ALREADY_RUNNING = 1056
    SERVICE_DOES_NOT_EXIST = 1060
    SERVICE_NOT_ACTIVE = 1062
    SERVICE_LOGON_FAILED = 1069
    SERVICE_MARKED_FOR_DELETE = 1072
    SERVICE_EXISTS = 1073
    SERVICE_DEPENDENCY_DELETED = 1075
    SERVICE_NEVER_STARTED = 1077


_REMEDIES = {
    WinError.ACCESS_DENIED: ELEVATION_MESSAGE,
    WinError.SERVICE_REQUEST_TIMEOUT: "The agent did not report that it was running in time; "
    "see the agent's log in its home directory (Logs\\OctopusTentacle.txt).",
    WinError.SERVICE_LOGON_FAILED: "Check the password, and grant the account the 'Log on as "
    "a service' right (secpol.msc > Local Policies > User Rights Assignment).",
    WinError.SERVICE_MARKED_FOR_DELETE: "Close the Services console and Event Viewer, then try "
    "again; if it persists, restart Windows.",
    WinError.SERVICE_EXISTS: "Reconfigure the existing service instead of installing it.",
    WinError.SERVICE_DEPENDENCY_DELETED: "A service this one depends on is missing; reconfigure "
    "it without --dependOn or install that service.",
}
_STATUSES = {
    ScState.STOPPED: ServiceStatus.STOPPED,
    ScState.START_PENDING: ServiceStatus.STARTING,
    ScState.STOP_PENDING: ServiceStatus.STOPPING,
    ScState.RUNNING: ServiceStatus.RUNNING,
    ScState.CONTINUE_PENDING: ServiceStatus.STARTING,
    ScState.PAUSE_PENDING: ServiceStatus.STOPPING,
    ScState.PAUSED: ServiceStatus.STOPPED,
}
_STATE_LINE = re.compile(r"^\s*STATE\s*:\s*(\d+)", re.MULTILINE)
_WIN32_EXIT_LINE = re.compile(r"^\s*WIN32_EXIT_CODE\s*:\s*(\d+)", re.MULTILINE)
_SERVICE_EXIT_LINE = re.compile(r"^\s*SERVICE_EXIT_CODE\s*:\s*(\d+)", re.MULTILINE)
_FAILED_CODE = re.compile(r"FAILED\s+(\d+)")


@dataclass(frozen=True)
class ServiceQuery:
    """What `sc.exe query` says about one service."""

    state: ScState
    win32_exit_code: int = 0
    service_exit_code: int = 0

    @property
    def status(self) -> ServiceStatus:
        """A stopped service whose last run ended with an error counts as failed."""
        clean = (0, WinError.SERVICE_NEVER_STARTED)
        if self.state is ScState.STOPPED and self.win32_exit_code not in clean:
            return ServiceStatus.FAILED
        return _STATUSES[self.state]

    @property
    def exit_description(self) -> str:
        return f"WIN32_EXIT_CODE {self.win32_exit_code}, SERVICE_EXIT_CODE {self.service_exit_code}"


def parse_query(output: str) -> ServiceQuery:
    state = _STATE_LINE.search(output)
    if state is None or int(state.group(1)) not in ScState._value2member_map_:
        raise ServiceError(
            f"Could not read a service state from the output of sc.exe query: {output.strip()!r}",
            "Run `sc.exe query` by hand to see what Windows reports.",
        )
    return ServiceQuery(
        ScState(int(state.group(1))),
        _number(_WIN32_EXIT_LINE, output),
        _number(_SERVICE_EXIT_LINE, output),
    )


def _number(pattern: re.Pattern[str], output: str) -> int:
    found = pattern.search(output)
    return int(found.group(1)) if found else 0


def error_code(done: Completed) -> int:
    """sc.exe exits with the Win32 error code and also prints '[SC] <Call> FAILED <code>:'."""
    found = _FAILED_CODE.search(done.output)
    return int(found.group(1)) if found else done.returncode


def binary_path(argv: Sequence[str]) -> str:
    """The binPath= value: the executable always quoted, the arguments by Windows' C rules."""
    arguments = subprocess.list2cmdline(list(argv[1:]))
    return f'"{argv[0]}" {arguments}'.rstrip()


def dependencies(spec: ServiceSpec) -> str:
    return "/".join([*BASE_DEPENDENCIES, *([spec.depend_on] if spec.depend_on else [])])


def service_arguments(spec: ServiceSpec) -> list[str]:
    """The arguments sc.exe create and sc.exe config share.

    The account is always given, LocalSystem when there is no username, so a reconfigure away
    from a named account really goes back to LocalSystem (sc.exe config keeps the old one).
    """
    arguments = [
        "binPath=",
        binary_path(spec.argv),
        "DisplayName=",
        spec.service_name,
        "depend=",
        dependencies(spec),
        "start=",
        START_TYPE,
        "obj=",
        spec.username or "LocalSystem",
    ]
    if spec.password is not None:
        arguments += ["password=", spec.password.get_secret_value()]
    return arguments


def check_spec(spec: ServiceSpec) -> None:
    """The rules the Windows service manager adds to a spec."""
    problems: dict[str, str] = {}
    executable = spec.argv[0]
    if not PureWindowsPath(executable).drive or '"' in executable:
        problems["argv"] = (
            f"must start with the absolute Windows path of the executable (C:\\... or "
            f"\\\\server\\share\\...), not {executable!r}"
        )
    if spec.environment:
        problems["environment"] = (
            "is not supported by the Windows service manager; pass settings to the agent in argv"
        )
    if spec.working_directory is not None:
        problems["working_directory"] = (
            "is not supported by the Windows service manager; the agent runs in its home directory"
        )
    if problems:
        raise ServiceSpecError(problems)


def is_elevated() -> bool:
    """True when this process runs with an administrator token (always False off Windows)."""
    if sys.platform != "win32":
        return False
    return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]


class WindowsServiceManager(ServiceManagerBase):
    name = "windows"

    def __init__(
        self,
        runner: Runner = run_command,
        *,
        elevated: Callable[[], bool] = is_elevated,
        on_windows: bool = sys.platform == "win32",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.3,
        wait_timeout: float = 45.0,
    ):
        self._runner = runner
        self._elevated = elevated
        self._on_windows = on_windows
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._wait_timeout = wait_timeout

    def check_prerequisites(self) -> list[Problem]:
        if not self._on_windows:
            return [
                Problem(
                    "The Windows service manager exists only on Windows.",
                    "Use systemd or the user-mode supervisor on this machine.",
                )
            ]
        if shutil.which(SC) is None:
            return [Problem(f"{SC} was not found on PATH.", "Add %SystemRoot%\\System32 to PATH.")]
        if not self._elevated():
            return [Problem(ELEVATION_MESSAGE, "Start the shell with 'Run as administrator'.")]
        return []

    def install(self, spec: ServiceSpec) -> None:
        check_spec(spec)
        self._require_elevation()
        if self._query(spec.service_name) is not None:
            self._reconfigure(spec)
            return
        self._check_dependency(spec)
        self._sc(spec, "create", spec.service_name, *service_arguments(spec))
        try:
            self._describe_and_recover(spec)
        except ServiceError:
            run_logged(self._runner, [SC, "delete", spec.service_name])
            raise

    def reconfigure(self, spec: ServiceSpec) -> None:
        check_spec(spec)
        self._require_elevation()
        if self._query(spec.service_name) is None:
            raise not_installed_error(spec, "reconfigure")
        self._reconfigure(spec)

    def uninstall(self, spec: ServiceSpec) -> None:
        self._require_elevation()
        query = self._query(spec.service_name)
        if query is None:
            return
        if query.state is not ScState.STOPPED:
            self.stop(spec)
        self._sc(spec, "delete", spec.service_name)

    def start(self, spec: ServiceSpec) -> None:
        self._require_elevation()
        done = self._sc(
            spec,
            "start",
            spec.service_name,
            allowed=(WinError.SERVICE_ALREADY_RUNNING, WinError.SERVICE_DOES_NOT_EXIST),
        )
        if error_code(done) == WinError.SERVICE_DOES_NOT_EXIST:
            raise not_installed_error(spec, "start")
        self._wait_for(spec, ScState.RUNNING)

    def stop(self, spec: ServiceSpec) -> None:
        self._require_elevation()
        done = self._sc(
            spec,
            "stop",
            spec.service_name,
            allowed=(WinError.SERVICE_NOT_ACTIVE, WinError.SERVICE_DOES_NOT_EXIST),
        )
        if done.returncode == 0:
            self._wait_for(spec, ScState.STOPPED)

    def status(self, spec: ServiceSpec) -> ServiceStatus:
        query = self._query(spec.service_name)
        return ServiceStatus.NOT_INSTALLED if query is None else query.status

    # --- steps -----------------------------------------------------------------------------------

    def _reconfigure(self, spec: ServiceSpec) -> None:
        self._check_dependency(spec)
        self.stop(spec)
        self._sc(spec, "config", spec.service_name, *service_arguments(spec))
        self._describe_and_recover(spec)

    def _describe_and_recover(self, spec: ServiceSpec) -> None:
        name = spec.service_name
        self._sc(spec, "description", name, spec.description)
        self._sc(
            spec,
            "failure",
            name,
            "reset=",
            str(FAILURE_RESET_SECONDS),
            "actions=",
            FAILURE_ACTIONS,
        )
        self._sc(spec, "failureflag", name, "1")

    def _check_dependency(self, spec: ServiceSpec) -> None:
        if spec.depend_on is not None and self._query(spec.depend_on) is None:
            raise ServiceSpecError(
                {
                    "depend_on": f"Unable to set dependency on service '{spec.depend_on}' as no "
                    "service was found with that name."
                }
            )

    def _require_elevation(self) -> None:
        if not self._elevated():
            raise ServiceError(ELEVATION_MESSAGE, "Start the shell with 'Run as administrator'.")

    def _query(self, name: str) -> ServiceQuery | None:
        """The service's state, or None when no service has that name."""
        done = run_logged(self._runner, [SC, "query", name])
        if done.returncode == 0:
            return parse_query(done.stdout)
        if error_code(done) == WinError.SERVICE_DOES_NOT_EXIST:
            return None
        raise _failure(f"{SC} query {name!r}", done, ())

    def _wait_for(self, spec: ServiceSpec, target: ScState) -> None:
        """Poll until the service reaches `target`; a start that ends in STOPPED fails at once."""
        deadline = self._clock() + self._wait_timeout
        while True:
            query = self._query(spec.service_name)
            if query is None:
                raise not_installed_error(spec, "start" if target is ScState.RUNNING else "stop")
            if query.state is target:
                return
            if target is ScState.RUNNING and query.state is ScState.STOPPED:
                remedy = _REMEDIES[WinError.SERVICE_REQUEST_TIMEOUT]
                raise ServiceError(
                    f"Service {spec.service_name} stopped while starting "
                    f"({query.exit_description}).",
                    _REMEDIES.get(query.win32_exit_code, remedy),
                )
            if self._clock() >= deadline:
                raise ServiceError(
                    f"Service {spec.service_name} did not reach {target.name} within "
                    f"{self._wait_timeout:.0f} s (it is {query.state.name}).",
                    "Check the agent's log, then try again.",
                )
            self._sleep(self._poll_interval)

    def _sc(self, spec: ServiceSpec, *args: str, allowed: Sequence[int] = ()) -> Completed:
        done = run_logged(self._runner, [SC, *args], spec.secrets)
        if done.returncode != 0 and error_code(done) not in allowed:
            raise _failure(f"{SC} {args[0]} {args[1]!r}", done, spec.secrets)
        return done


def _failure(action: str, done: Completed, secrets: Sequence[str]) -> ServiceError:
    code = error_code(done)
    return ServiceError(
        f"{action} failed with error {code}: {mask_text(done.output, secrets)}",
        _REMEDIES.get(code, ""),
    )
