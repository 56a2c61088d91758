"""What every service manager is given and promises: the service spec, statuses, errors, the
command runner and the manager protocol.

The interface is synchronous; the GUI calls it through an executor.

Unlike Tentacle, a failed start, stop or enable raises `ServiceError` (Tentacle logs the failure
and still exits 0), so a caller can never report a service as started when it is not. Bad input
raises `ServiceSpecError`, which names each field and the rule it broke, before anything on the
machine is changed.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Protocol, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tentacle_manager.contracts import ProblemsError, validation_problems
from tentacle_manager.files.atomic import PendingFile, write_atomically

SERVICE_DESCRIPTION = "Octopus Deploy: Tentacle deployment agent"
DEFAULT_SERVICE_NAME = "OctopusDeploy Tentacle"
DEFAULT_INSTANCE_NAME = "Tentacle"
MASK = "********"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE_RUN = re.compile(r"\s+")
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_log = logging.getLogger(__name__)


class ServiceStatus(StrEnum):
    NOT_INSTALLED = "not-installed"
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class Problem:
    """A prerequisite that is not met: what is wrong, and what the user can do about it."""

    message: str
    remedy: str


class ServiceError(Exception):
    """A service operation that did not happen; `remedy` says what the user can do next."""

    def __init__(self, message: str, remedy: str = ""):
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}".strip()

    @classmethod
    def from_problems(cls, problems: Sequence[Problem]) -> ServiceError:
        return cls(
            " ".join(problem.message for problem in problems),
            " ".join(problem.remedy for problem in problems),
        )


class ServiceSpecError(ProblemsError):
    """A service spec that cannot be installed (fields are ServiceSpec attribute names)."""


def _plain_text(value: str) -> str:
    """Text that goes into unit files and command lines: one line, not blank."""
    if not value.strip():
        raise ValueError("must not be blank")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters such as newlines or tabs")
    return value


def is_absolute_anywhere(path: str) -> bool:
    """True for an absolute POSIX path or an absolute Windows path with a drive or UNC share."""
    return PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()


class RestartPolicy(BaseModel):
    """How the user-mode supervisor restarts and stops the agent (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_grace: float = Field(10.0, gt=0, le=3600, description="SIGTERM to SIGKILL")
    backoff_initial: float = Field(1.0, gt=0, le=3600, description="first restart delay")
    backoff_max: float = Field(30.0, gt=0, le=3600, description="restart delay ceiling")
    crash_limit: int = Field(5, ge=1, le=1000, description="restarts allowed per window")
    crash_window: float = Field(60.0, gt=0, le=86400, description="window for crash_limit")

    @model_validator(mode="after")
    def _ceiling_above_start(self) -> Self:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must not be less than backoff_initial")
        return self


class ServiceSpec(BaseModel):
    """One agent as an operating-system service. The password is never logged or written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance: str | None = None
    config_path: Path | None = Field(default=None, validate_default=True)
    argv: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = Field(default=None, repr=False)
    depend_on: str | None = None
    description: str = SERVICE_DESCRIPTION
    environment: dict[str, str] = Field(default_factory=dict)
    working_directory: Path | None = None
    restart: RestartPolicy = Field(default_factory=RestartPolicy)

    @classmethod
    def create(cls, **values: Any) -> ServiceSpec:
        try:
            return cls(**values)
        except ValidationError as error:
            raise ServiceSpecError(validation_problems(error, "spec")) from None

    @field_validator("instance")
    @classmethod
    def _instance_names_a_unit(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _plain_text(value)
        if unit_name_for(value) in {"", ".", ".."}:
            raise ValueError(
                f"{value!r} leaves no usable service name once '/' is removed and whitespace "
                "becomes '-'"
            )
        return value

    @field_validator("config_path")
    @classmethod
    def _unnamed_needs_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and "instance" in info.data and info.data["instance"] is None:
            raise ValueError("is required when instance is not given (an unnamed instance)")
        if value is not None and not is_absolute_anywhere(str(value)):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("argv")
    @classmethod
    def _runnable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any("\x00" in word for word in value):
            raise ValueError("must not contain NUL characters")
        if not is_absolute_anywhere(value[0]):
            raise ValueError(
                f"must start with the absolute path of the executable, not {value[0]!r}"
            )
        return value

    @field_validator("username", "depend_on", "description")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value)

    @field_validator("depend_on")
    @classmethod
    def _single_dependency(cls, value: str | None) -> str | None:
        if value is not None and "/" in value:
            raise ValueError("must name one service; '/' separates Windows dependencies")
        return value

    @field_validator("password")
    @classmethod
    def _password_needs_user(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and "username" in info.data and info.data["username"] is None:
            raise ValueError("is only used with username; give the account it belongs to")
        if value is not None and "\x00" in value.get_secret_value():
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("environment")
    @classmethod
    def _environment_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENVIRONMENT_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits, '_')")
            if _CONTROL.search(text):
                raise ValueError(f"the value of {name} must not contain control characters")
        return value

    @field_validator("working_directory")
    @classmethod
    def _absolute_directory(cls, value: Path | None) -> Path | None:
        if value is not None and not is_absolute_anywhere(str(value)):
            raise ValueError("must be an absolute path")
        return value

    @property
    def service_name(self) -> str:
        """Tentacle's service (and display) name, from ServiceName.cs."""
        if self.instance is None or self.instance == DEFAULT_INSTANCE_NAME:
            return DEFAULT_SERVICE_NAME
        return f"{DEFAULT_SERVICE_NAME}: {self.instance}"

    @property
    def unit_name(self) -> str:
        """Tentacle's systemd unit name, also used to name the supervisor's state directory."""
        return unit_name_for(self.instance or DEFAULT_SERVICE_NAME)

    @property
    def secrets(self) -> tuple[str, ...]:
        return () if self.password is None else (self.password.get_secret_value(),)


def is_root() -> bool:
    """True for an effective user id of 0 (never on Windows, which has no such id)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def unit_name_for(name: str) -> str:
    """Tentacle's rule (LinuxServiceConfigurator.cs): drop '/', whitespace runs become '-'."""
    return _WHITESPACE_RUN.sub("-", name.replace("/", ""))


# --- running commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def output(self) -> str:
        """Both streams, trimmed, for error messages (sc.exe reports failures on stdout)."""
        return "\n".join(part.strip() for part in (self.stdout, self.stderr) if part.strip())


Runner = Callable[[Sequence[str]], Completed]
COMMAND_TIMEOUT = 120.0


def run_command(argv: Sequence[str]) -> Completed:
    """The real runner: a missing program or a hang becomes a failed Completed, not a crash."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return Completed(127, "", f"{argv[0]} was not found on PATH")
    except subprocess.TimeoutExpired:
        return Completed(124, "", f"{argv[0]} did not finish within {COMMAND_TIMEOUT:.0f} s")
    return Completed(done.returncode, done.stdout, done.stderr)


def describe_command(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """A command as a user would type it, with every secret replaced by a mask."""
    return mask_text(subprocess.list2cmdline(list(argv)), secrets)


def run_logged(runner: Runner, argv: Sequence[str], secrets: Sequence[str] = ()) -> Completed:
    _log.info("Running %s", describe_command(argv, secrets))
    done = runner(argv)
    if done.returncode != 0:
        _log.info("Exit code %d: %s", done.returncode, mask_text(done.output, secrets))
    return done


def mask_text(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced by a mask (a password can reach an error message)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


# --- files ---------------------------------------------------------------------------------------


def atomic_write_text(path: Path, text: str, mode: int) -> None:
    """Replace `path` whole, with exactly `mode` (the umask must not narrow a unit file that
    systemd reads)."""
    write_atomically(PendingFile(path, text.encode(), mode))


# --- the manager interface -----------------------------------------------------------------------


class ServiceManager(Protocol):
    """One way of running the agent as a service. Every method blocks until it is done."""

    name: str

    def check_prerequisites(self) -> list[Problem]: ...
    def install(self, spec: ServiceSpec) -> None: ...
    def reconfigure(self, spec: ServiceSpec) -> None: ...
    def uninstall(self, spec: ServiceSpec) -> None: ...
    def start(self, spec: ServiceSpec) -> None: ...
    def stop(self, spec: ServiceSpec) -> None: ...
    def restart(self, spec: ServiceSpec) -> None: ...
    def status(self, spec: ServiceSpec) -> ServiceStatus: ...


class ServiceManagerBase(ABC):
    """What the three managers share.

    Semantics every manager keeps: install of an installed service reconfigures it (Tentacle's
    Windows behaviour); reconfigure stops the service and leaves it stopped, as Tentacle's
    systemd reconfigure does, so the caller decides whether to start it again; uninstall and stop
    of a service that is not installed (or not running) do nothing; start of a service that is not
    installed raises; start of a running service does nothing.
    """

    name: str

    @abstractmethod
    def stop(self, spec: ServiceSpec) -> None: ...

    @abstractmethod
    def start(self, spec: ServiceSpec) -> None: ...

    def restart(self, spec: ServiceSpec) -> None:
        """Stop, then start; unlike Tentacle this starts a service that was not running."""
        self.stop(spec)
        self.start(spec)


def not_installed_error(spec: ServiceSpec, action: str) -> ServiceError:
    """Tentacle's message for a start of a missing service, generalised to any action."""
    return ServiceError(
        f"{action.capitalize()} requested for service {spec.service_name}, but no service with "
        "this name was found.",
        "Install it first (tentacle service --install).",
    )
