"""systemd: a unit file in /etc/systemd/system driven with systemctl.

Differences from Tentacle's LinuxServiceConfigurator, all deliberate:

- ExecStart is quoted by systemd's rules, so an instance name or path with spaces, '%' or '$'
  reaches the agent unchanged (Tentacle writes it raw and a space breaks the unit).
- `systemctl daemon-reload` runs explicitly after every change to the unit file instead of
  relying on enable's implicit reload, which does not happen on a reconfigure that stays enabled.
- RestartSec=5 (systemd's default of 100 ms turns a crash loop into a busy loop) and
  KillMode=process (see `KILL_MODE_NOTE`).
- Commands run directly, not through `/bin/bash -c`; for a user who is not root they run through
  `sudo -n` from the start instead of being retried with sudo after a permission error.
- A failed systemctl call raises ServiceError, and a failed install or reconfigure puts the
  previous unit file back.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from tentacle_manager.platform.services.spec import (
    Completed,
    Problem,
    Runner,
    ServiceError,
    ServiceManagerBase,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    atomic_write_text,
    is_root,
    not_installed_error,
    run_command,
    run_logged,
)

UNIT_DIRECTORY = Path("/etc/systemd/system")
RUNTIME_DIRECTORY = Path("/run/systemd/system")
UNIT_MODE = 0o644
ELEVATION_MESSAGE = "Requires elevated privileges. Please run command as sudo."
NO_SYSTEMD_MESSAGE = "Could not detect systemd. systemd is required to run Tentacle as a service"
KILL_MODE_NOTE = (
    "# KillMode=process: stopping or restarting the agent signals only the agent itself;"
    " its scripts keep running and the agent re-adopts them when it comes back."
)
# The default KillMode=control-group would kill every script the agent started whenever the
# agent is restarted (an upgrade, a config change, a crash), losing deployments in flight. The
# agent puts scripts in their own sessions and recovers them by their tracking tag at start-up.

_UNIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9:_.-]*")
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
_BARE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_UNIT_SUFFIXES = (
    ".service",
    ".socket",
    ".target",
    ".mount",
    ".automount",
    ".device",
    ".path",
    ".timer",
    ".slice",
    ".scope",
    ".swap",
)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}
_PERMISSION_HINTS = ("Interactive authentication required", "Access denied", "Permission denied")
_ACTIVE_STATES = {
    "active": ServiceStatus.RUNNING,
    "reloading": ServiceStatus.RUNNING,
    "refreshing": ServiceStatus.RUNNING,
    "activating": ServiceStatus.STARTING,
    "deactivating": ServiceStatus.STOPPING,
    "maintenance": ServiceStatus.STOPPING,
    "inactive": ServiceStatus.STOPPED,
    "failed": ServiceStatus.FAILED,
}


# --- unit file text ------------------------------------------------------------------------------


def escape_specifiers(text: str) -> str:
    """systemd expands '%x' specifiers in most settings; '%%' is a literal '%'."""
    return text.replace("%", "%%")


def quote_word(word: str, *, expand_variables: bool = True) -> str:
    """One ExecStart (or Environment) word that systemd reads back as exactly `word`.

    Specifiers are resolved first, then quotes and C escapes, then (ExecStart only) `$VAR`
    substitution, so '%' becomes '%%' and '$' becomes '$$'. Plain words stay bare so the common
    case reads like Tentacle's unit.
    """
    escaped = escape_specifiers(word)
    if expand_variables:
        escaped = escaped.replace("$", "$$")
    if _BARE_WORD.fullmatch(escaped):
        return escaped
    return '"' + "".join(_escape_char(char) for char in escaped) + '"'


def _escape_char(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\x{ord(char):02x}"
    return char


def dependency_unit(name: str) -> str:
    """`--dependOn=postgresql` means postgresql.service; After= needs the full unit name."""
    return name if name.endswith(_UNIT_SUFFIXES) else f"{name}.service"


def check_spec(spec: ServiceSpec) -> None:
    """The rules systemd adds to a spec; raises ServiceSpecError naming every broken field."""
    problems: dict[str, str] = {}
    if not _UNIT_NAME.fullmatch(spec.unit_name) or len(spec.unit_name) > 240:
        problems["instance"] = (
            f"gives the unit name {spec.unit_name!r}; a systemd unit name has at most 240 "
            "letters, digits, ':', '_', '.' or '-' and starts with a letter, digit or '_'"
        )
    if not PurePosixPath(spec.argv[0]).is_absolute():
        problems["argv"] = f"must start with an absolute POSIX path, not {spec.argv[0]!r}"
    elif "$" in spec.argv[0]:
        problems["argv"] = (
            f"the executable path {spec.argv[0]!r} contains '$': systemd runs the path as written "
            "but expands variables in the name it passes the program; move the executable"
        )
    if spec.username is not None and not _USER_NAME.fullmatch(spec.username):
        problems["username"] = (
            f"{spec.username!r} is not a Linux user name (letters, digits, '_', '.', '-')"
        )
    if spec.depend_on is not None and not _UNIT_NAME.fullmatch(spec.depend_on):
        problems["depend_on"] = f"{spec.depend_on!r} is not a systemd unit name"
    if problems:
        raise ServiceSpecError(problems)


def render_unit(spec: ServiceSpec) -> str:
    """The unit file: Tentacle's lines in Tentacle's order, plus RestartSec and KillMode."""
    check_spec(spec)
    after = ["network.target"]
    if spec.depend_on is not None:
        after.append(dependency_unit(spec.depend_on))
    lines = [
        "[Unit]",
        f"Description={escape_specifiers(spec.description)}",
        f"After={' '.join(after)}",
        "",
        "[Service]",
        "Type=simple",
        f"User={spec.username or 'root'}",
        f"ExecStart={' '.join(quote_word(word) for word in spec.argv)}",
    ]
    lines += [
        f"Environment={quote_word(f'{name}={value}', expand_variables=False)}"
        for name, value in spec.environment.items()
    ]
    if spec.working_directory is not None:
        lines.append(f"WorkingDirectory={escape_specifiers(str(spec.working_directory))}")
    lines += [
        "Restart=always",
        "RestartSec=5",
        KILL_MODE_NOTE,
        "KillMode=process",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def parse_show(output: str) -> ServiceStatus:
    """Read `systemctl show -p ActiveState,LoadState` output (one Key=Value per line)."""
    values = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    if values.get("LoadState") == "not-found":
        return ServiceStatus.NOT_INSTALLED
    state = values.get("ActiveState")
    if state not in _ACTIVE_STATES:
        raise ServiceError(
            f"systemctl reported ActiveState={state!r}, which Tentacle Manager does not know.",
            "Check the unit with `systemctl status`.",
        )
    return _ACTIVE_STATES[state]


# --- the manager ---------------------------------------------------------------------------------


class SystemdManager(ServiceManagerBase):
    """Runs the agent as a system unit. Needs root, or passwordless sudo (`sudo` left as None
    decides by the effective user id)."""

    name = "systemd"

    def __init__(
        self,
        runner: Runner = run_command,
        *,
        unit_directory: Path = UNIT_DIRECTORY,
        runtime_directory: Path = RUNTIME_DIRECTORY,
        sudo: bool | None = None,
    ):
        self._runner = runner
        self._unit_directory = unit_directory
        self._runtime_directory = runtime_directory
        self._sudo = not is_root() if sudo is None else sudo

    def unit_path(self, spec: ServiceSpec) -> Path:
        return self._unit_directory / f"{spec.unit_name}.service"

    def check_prerequisites(self) -> list[Problem]:
        problems = []
        if shutil.which("systemctl") is None:
            problems.append(
                Problem(NO_SYSTEMD_MESSAGE, "Install systemd, or use the user-mode supervisor.")
            )
        elif not self._runtime_directory.is_dir():
            problems.append(
                Problem(
                    f"systemd is installed but is not the init system ({self._runtime_directory}"
                    " does not exist, so PID 1 is not systemd).",
                    "Use the user-mode supervisor, or run the machine (or container) with "
                    "systemd as PID 1.",
                )
            )
        if self._sudo and run_logged(self._runner, ["sudo", "-n", "true"]).returncode != 0:
            problems.append(
                Problem(
                    ELEVATION_MESSAGE,
                    "Run as root, or allow this user passwordless sudo for systemctl.",
                )
            )
        return problems

    def install(self, spec: ServiceSpec) -> None:
        text = render_unit(spec)
        path = self.unit_path(spec)
        if path.exists():
            self._replace(path, text)
            return
        self._write_unit(path, text)
        self._activate(path, previous=None)

    def reconfigure(self, spec: ServiceSpec) -> None:
        text = render_unit(spec)
        path = self.unit_path(spec)
        if not path.exists():
            raise not_installed_error(spec, "reconfigure")
        self._replace(path, text)

    def uninstall(self, spec: ServiceSpec) -> None:
        path = self.unit_path(spec)
        if not path.exists():
            return
        self._systemctl("stop", path.name)
        self._systemctl("disable", path.name)
        self._remove_unit(path)
        self._systemctl("daemon-reload")

    def start(self, spec: ServiceSpec) -> None:
        path = self.unit_path(spec)
        if not path.exists():
            raise not_installed_error(spec, "start")
        self._systemctl(
            "start", path.name, remedy=f"See `journalctl -u {path.name}` for the agent's output."
        )

    def stop(self, spec: ServiceSpec) -> None:
        path = self.unit_path(spec)
        if path.exists():
            self._systemctl("stop", path.name)

    def status(self, spec: ServiceSpec) -> ServiceStatus:
        unit = self.unit_path(spec).name
        done = self._systemctl("show", "-p", "ActiveState,LoadState", unit)
        return parse_show(done.stdout)

    # --- steps -----------------------------------------------------------------------------------

    def _replace(self, path: Path, text: str) -> None:
        previous = path.read_text()
        self._systemctl("stop", path.name)
        self._systemctl("disable", path.name)
        self._write_unit(path, text)
        self._activate(path, previous)

    def _activate(self, path: Path, previous: str | None) -> None:
        """daemon-reload and enable; if either fails, put back what was there before."""
        try:
            self._systemctl("daemon-reload")
            self._systemctl("enable", path.name)
        except ServiceError:
            self._restore(path, previous)
            raise

    def _restore(self, path: Path, previous: str | None) -> None:
        """Best effort: the error being raised already says what went wrong."""
        with contextlib.suppress(ServiceError):
            if previous is None:
                self._remove_unit(path)
            else:
                self._write_unit(path, previous)
            self._systemctl("daemon-reload")
            if previous is not None:
                self._systemctl("enable", path.name)

    def _write_unit(self, path: Path, text: str) -> None:
        if not self._sudo:
            with self._file_errors(path, "write"):
                atomic_write_text(path, text, UNIT_MODE)
            return
        staged_name = path.with_name(f".{path.name}.tmp")
        with tempfile.TemporaryDirectory(prefix="tentacle-unit-") as scratch:
            staged = Path(scratch) / path.name
            staged.write_text(text)
            self._run(["install", "-m", f"{UNIT_MODE:o}", str(staged), str(staged_name)])
            self._run(["mv", "-f", str(staged_name), str(path)])

    def _remove_unit(self, path: Path) -> None:
        if self._sudo:
            self._run(["rm", "-f", str(path)])
            return
        with self._file_errors(path, "delete"):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _file_errors(self, path: Path, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            denied = error.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
            raise ServiceError(
                f"Could not {action} {path}: {error.strerror}.",
                ELEVATION_MESSAGE if denied else "",
            ) from None

    def _systemctl(self, *args: str, remedy: str = "") -> Completed:
        return self._run(["systemctl", *args], remedy)

    def _run(self, argv: Sequence[str], remedy: str = "") -> Completed:
        command = ["sudo", "-n", *argv] if self._sudo else list(argv)
        done = run_logged(self._runner, command)
        if done.returncode != 0:
            if any(hint in done.output for hint in _PERMISSION_HINTS):
                remedy = ELEVATION_MESSAGE
            raise ServiceError(
                f"`{' '.join(command)}` failed with exit code {done.returncode}: {done.output}",
                remedy,
            )
        return done
