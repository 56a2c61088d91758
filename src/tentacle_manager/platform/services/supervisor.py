"""The user-mode supervisor as a ServiceManager: for machines without systemd or the Windows
service manager, and for users who are not administrators.

Each service gets a state directory:

    spec.json       what to run (written here; never holds a password)
    supervisor.pid  {"pid", "create_time"} of the latest supervisor process; only the manager
                    removes it, after that process is gone
    agent.pid       the same for the agent, while it runs
    status.json     the supervisor's current phase, and why it failed
    supervisor.log  the supervisor's event log (its stdout and stderr)
    agent.log       the agent's output, appended

A pid file carries the process create time so that a pid reused by an unrelated process after
a crash or a reboot is never mistaken for ours.

Start launches a detached supervisor process and waits until it reports the agent running;
stop asks it to stop and, if it does not, kills it and the agent. Operations on one service
are serialised with a lock file, so a GUI and a command line cannot start two supervisors for
the same service.

Unlike systemd and Windows, nothing starts the supervisor when the machine boots; after a
reboot the service reads as stopped until it is started again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tentacle_manager.files.locks import exclusive_lock
from tentacle_manager.platform.services.spec import (
    Problem,
    RestartPolicy,
    ServiceError,
    ServiceManagerBase,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    atomic_write_text,
    is_root,
    not_installed_error,
)

if sys.platform != "win32":  # the supervisor is POSIX-only; check_prerequisites says so elsewhere
    import pwd

PROCESS_MODULE = "tentacle_manager.platform.services.supervisor_process"
SYSTEM_STATE_ROOT = Path("/var/lib/tentacle-manager/services")
STATE_ROOT_OVERRIDE = "TENTACLE_SERVICE_STATE_ROOT"  # a sandbox's own services (tests, trials)
START_TIMEOUT = 10.0
STOP_MARGIN = 5.0
KILL_WAIT = 5.0
POLL_INTERVAL = 0.02
LOG_TAIL_LINES = 20


_Model = TypeVar("_Model", bound=BaseModel)


# --- the state directory, shared with the supervisor process -----------------------------------


class Phase(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKING_OFF = "backing-off"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class SupervisedCommand(BaseModel):
    """spec.json: everything the supervisor needs, and nothing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: tuple[str, ...] = Field(min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)
    working_directory: Path | None = None
    user: str | None = None
    policy: RestartPolicy = Field(default_factory=RestartPolicy)


class PidRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    create_time: float

    @classmethod
    def of(cls, process: psutil.Process) -> PidRecord:
        return cls(pid=process.pid, create_time=process.create_time())

    def process(self) -> psutil.Process | None:
        """The live process this record names; None once it has exited (or is a zombie) or
        when its pid now belongs to a different process."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.01:
                return None
            return None if process.status() == psutil.STATUS_ZOMBIE else process
        except psutil.Error:
            return None

    def before_boot(self) -> bool:
        return self.create_time < psutil.boot_time()


class StatusRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: Phase
    reason: str = ""
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class StateDirectory:
    """The files of one supervised service, and how they are read and written."""

    path: Path

    @property
    def spec(self) -> Path:
        return self.path / "spec.json"

    @property
    def supervisor_pid(self) -> Path:
        return self.path / "supervisor.pid"

    @property
    def agent_pid(self) -> Path:
        return self.path / "agent.pid"

    @property
    def status(self) -> Path:
        return self.path / "status.json"

    @property
    def supervisor_log(self) -> Path:
        return self.path / "supervisor.log"

    @property
    def agent_log(self) -> Path:
        return self.path / "agent.log"

    def read_command(self) -> SupervisedCommand:
        return SupervisedCommand.model_validate_json(self.spec.read_bytes())

    def write_command(self, command: SupervisedCommand) -> None:
        atomic_write_text(self.spec, command.model_dump_json(indent=2), 0o600)

    def read_pid(self, path: Path) -> PidRecord | None:
        """The record in `path`; None when it is missing or unreadable (a torn write)."""
        return _read_model(PidRecord, path)

    def live(self, path: Path) -> psutil.Process | None:
        record = self.read_pid(path)
        return None if record is None else record.process()

    def write_pid(self, path: Path, record: PidRecord) -> None:
        atomic_write_text(path, record.model_dump_json(), 0o644)

    def read_status(self) -> StatusRecord | None:
        return _read_model(StatusRecord, self.status)

    def write_status(self, phase: Phase, reason: str = "") -> None:
        atomic_write_text(
            self.status, StatusRecord(phase=phase, reason=reason).model_dump_json(), 0o644
        )

    def clear_runtime_records(self) -> None:
        for path in (self.supervisor_pid, self.agent_pid, self.status):
            path.unlink(missing_ok=True)


def _read_model(model: type[_Model], path: Path) -> _Model | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


# --- the manager --------------------------------------------------------------------------------


def default_state_root() -> Path:
    """$TENTACLE_SERVICE_STATE_ROOT when set; else /var/lib/... for root, and otherwise
    $XDG_STATE_HOME (or ~/.local/state)/tentacle-manager/."""
    override = os.environ.get(STATE_ROOT_OVERRIDE, "")
    if os.path.isabs(override):
        return Path(override)
    if is_root():
        return SYSTEM_STATE_ROOT
    configured = os.environ.get("XDG_STATE_HOME", "")
    # The XDG base directory spec says a relative value is invalid and must be ignored.
    base = Path(configured) if os.path.isabs(configured) else Path.home() / ".local" / "state"
    return base / "tentacle-manager" / "services"


def supervised_command(spec: ServiceSpec) -> SupervisedCommand:
    """What spec.json holds for `spec`, after the checks only this machine can make."""
    problems: dict[str, str] = {}
    executable = Path(spec.argv[0])
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        problems["argv"] = f"{executable} is not an executable file on this machine"
    if spec.working_directory is not None and not spec.working_directory.is_dir():
        problems["working_directory"] = f"{spec.working_directory} is not a directory"
    user, problem = _run_as(spec.username)
    if problem:
        problems["username"] = problem
    if problems:
        raise ServiceSpecError(problems)
    return SupervisedCommand(
        argv=spec.argv,
        environment=spec.environment,
        working_directory=spec.working_directory,
        user=user,
        policy=spec.restart,
    )


def _run_as(username: str | None) -> tuple[str | None, str]:
    """The user to switch to (None: stay as we are), or a problem with the username."""
    if username is None:
        return None, ""
    try:
        entry = pwd.getpwnam(username)
    except KeyError:
        return None, f"there is no user {username!r} on this machine"
    if entry.pw_uid == os.geteuid():
        return None, ""
    if not is_root():
        return None, (
            "the supervisor can run the agent as another user only when it runs as root; "
            "leave username empty or install as root"
        )
    return username, ""


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_gone(process: psutil.Process, timeout: float) -> bool:
    """Wait for a process that may not be our child; a zombie counts as gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def _signal(process: psutil.Process, number: signal.Signals) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(number)


def _kill(process: psutil.Process) -> None:
    _signal(process, signal.SIGKILL)
    _wait_gone(process, KILL_WAIT)


def _terminate(process: psutil.Process, grace: float) -> bool:
    """SIGTERM, then SIGKILL after `grace`; True when SIGTERM was enough."""
    _signal(process, signal.SIGTERM)
    if _wait_gone(process, grace):
        return True
    _kill(process)
    return False


class SupervisorManager(ServiceManagerBase):
    name = "supervisor"

    def __init__(
        self,
        state_root: Path | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        stop_margin: float = STOP_MARGIN,
    ):
        self._root = (state_root or default_state_root()).absolute()
        self._start_timeout = start_timeout
        self._stop_margin = stop_margin

    def state_directory(self, spec: ServiceSpec) -> StateDirectory:
        return StateDirectory(self._root / spec.unit_name)

    def check_prerequisites(self) -> list[Problem]:
        if os.name != "posix":
            return [
                Problem(
                    "The user-mode supervisor needs a POSIX system.",
                    "Use the Windows service manager (run as administrator).",
                )
            ]
        existing = next(parent for parent in (self._root, *self._root.parents) if parent.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            return [
                Problem(
                    f"Cannot create the supervisor's state directory under {self._root} "
                    f"({existing} is not writable).",
                    "Set XDG_STATE_HOME to a directory you can write, or run as its owner.",
                )
            ]
        return []

    def install(self, spec: ServiceSpec) -> None:
        command = supervised_command(spec)
        state = self.state_directory(spec)
        state.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked(state):
            self._stop(state, spec)
            state.write_command(command)

    def reconfigure(self, spec: ServiceSpec) -> None:
        command = supervised_command(spec)
        state = self._installed(spec, "reconfigure")
        with self._locked(state):
            self._stop(state, spec)
            state.write_command(command)

    def uninstall(self, spec: ServiceSpec) -> None:
        state = self.state_directory(spec)
        if not state.spec.exists():
            return
        with self._locked(state):
            self._stop(state, spec)
            shutil.rmtree(state.path)

    def start(self, spec: ServiceSpec) -> None:
        state = self._installed(spec, "start")
        with self._locked(state):
            if state.live(state.supervisor_pid) is not None:
                return
            self._stop(state, spec)  # an agent orphaned by a killed supervisor must not double up
            self._launch(state)
            self._await_agent(state, spec)

    def stop(self, spec: ServiceSpec) -> None:
        state = self.state_directory(spec)
        if not state.spec.exists():
            return
        with self._locked(state):
            self._stop(state, spec)

    def status(self, spec: ServiceSpec) -> ServiceStatus:
        return self.status_with_reason(spec)[0]

    def status_with_reason(self, spec: ServiceSpec) -> tuple[ServiceStatus, str]:
        """The status, and for FAILED why (from the supervisor's status file)."""
        state = self.state_directory(spec)
        if not state.spec.exists():
            return ServiceStatus.NOT_INSTALLED, ""
        record = state.read_pid(state.supervisor_pid)
        supervisor = None if record is None else record.process()
        reported = state.read_status()
        phase = None if reported is None else reported.phase
        reason = "" if reported is None else reported.reason
        if phase is Phase.FAILED:
            return ServiceStatus.FAILED, reason
        if supervisor is not None:
            if phase is Phase.STOPPING:
                return ServiceStatus.STOPPING, ""
            if phase is Phase.RUNNING and state.live(state.agent_pid) is not None:
                return ServiceStatus.RUNNING, ""
            return ServiceStatus.STARTING, ""
        if phase is Phase.STOPPED or record is None or record.before_boot():
            return ServiceStatus.STOPPED, ""
        return ServiceStatus.FAILED, (
            f"the supervisor (pid {record.pid}) ended without stopping cleanly; "
            f"see {state.supervisor_log}"
        )

    # --- steps -----------------------------------------------------------------------------------

    def _installed(self, spec: ServiceSpec, action: str) -> StateDirectory:
        state = self.state_directory(spec)
        if not state.spec.exists():
            raise not_installed_error(spec, action)
        return state

    @contextlib.contextmanager
    def _locked(self, state: StateDirectory) -> Iterator[None]:
        with exclusive_lock(state.path / "lock"):
            yield

    def _grace(self, state: StateDirectory, spec: ServiceSpec) -> float:
        """The grace the running supervisor was started with, which may predate `spec`."""
        try:
            return state.read_command().policy.stop_grace
        except (OSError, ValueError):
            return spec.restart.stop_grace

    def _stop(self, state: StateDirectory, spec: ServiceSpec) -> None:
        """Afterwards neither the supervisor nor the agent runs, no pid file is left, and the
        status reads STOPPED (a stop acknowledges an earlier failure)."""
        grace = self._grace(state, spec)
        supervisor = state.live(state.supervisor_pid)
        escalated = supervisor is not None and not _terminate(supervisor, grace + self._stop_margin)
        agent = state.live(state.agent_pid)
        if agent is not None:
            if escalated:
                _kill(agent)
            else:
                _terminate(agent, grace)
        state.supervisor_pid.unlink(missing_ok=True)
        state.agent_pid.unlink(missing_ok=True)
        state.write_status(Phase.STOPPED)

    def _launch(self, state: StateDirectory) -> None:
        state.clear_runtime_records()
        with state.supervisor_log.open("ab") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-m", PROCESS_MODULE, str(state.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=state.path,
                start_new_session=True,
                close_fds=True,
            )
        try:
            returncode = launcher.wait(timeout=self._start_timeout)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
            raise self._start_failure(state, "the supervisor did not detach in time") from None
        if returncode != 0:
            raise self._start_failure(state, f"the supervisor exited with code {returncode}")

    def _await_agent(self, state: StateDirectory, spec: ServiceSpec) -> None:
        """Wait until the supervisor reports the agent running; on any failure stop whatever
        was started, so a failed start leaves no process behind."""
        failure = self._agent_failure(state)
        if failure:
            self._stop(state, spec)
            state.write_status(Phase.FAILED, failure)
            raise self._start_failure(state, failure)

    def _agent_failure(self, state: StateDirectory) -> str:
        """Empty once the agent runs; otherwise why it does not."""
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            record = state.read_pid(state.supervisor_pid)
            gone = record is not None and record.process() is None
            reported = state.read_status()  # read after `gone`, so a last word is not missed
            if reported is not None and reported.phase is Phase.FAILED:
                return reported.reason
            running = reported is not None and reported.phase is Phase.RUNNING
            if running and state.live(state.agent_pid) is not None:
                return ""
            if gone:
                return "the supervisor ended unexpectedly"
            time.sleep(POLL_INTERVAL)
        return f"the agent was not reported running within {self._start_timeout:g} s"

    def _start_failure(self, state: StateDirectory, reason: str) -> ServiceError:
        return ServiceError(
            f"The service could not be started: {reason}.\n"
            f"Last lines of {state.supervisor_log}:\n{tail(state.supervisor_log)}",
            f"Fix the cause above, then start it again; the agent's own output is in "
            f"{state.agent_log}.",
        )
