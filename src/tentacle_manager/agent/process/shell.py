"""How a script body becomes a bootstrap file and a command line, per operating system.

Bash (Linux, macOS) and Windows PowerShell, with Tentacle's PowerShell command line. Two
deliberate differences from Tentacle: arguments are passed as separate argv entries (bash) or as
single-quoted PowerShell strings, never joined unquoted; and bash scripts record their exit
status in the workspace (through BASH_ENV, without touching the script), so an agent that
restarts while a script runs still learns how it ended.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tentacle_manager.contracts import ScriptType, StartScriptCommand

EXIT_CODE_FILE = ".tentacle_exit_code"
EXIT_TRAP_FILE = ".tentacle_exit_trap.sh"

_EXIT_TRAP = """\
# Written by Tentacle Manager: records the script's exit status for an agent that restarted.
unset BASH_ENV
if [ -n "${TENTACLE_USER_BASH_ENV-}" ]; then
  export BASH_ENV="$TENTACLE_USER_BASH_ENV"
  unset TENTACLE_USER_BASH_ENV
  . "$BASH_ENV"
fi
trap 'printf "%s" "$?" > "$TENTACLE_EXIT_CODE_FILE" 2>/dev/null' EXIT
"""


class Shell(Protocol):
    name: str
    executable: str
    bootstrap_name: str

    def select_body(self, command: StartScriptCommand) -> str: ...

    def bootstrap_bytes(self, body: str) -> bytes: ...

    def command_line(self, bootstrap: Path, arguments: list[str]) -> list[str]: ...

    def prepare(self, workspace: Path, environment: dict[str, str]) -> None:
        """Write any helper files and set any variables the command line relies on."""


@dataclass(frozen=True)
class Bash:
    executable: str = shutil.which("bash") or "/bin/bash"
    name: str = "bash"
    bootstrap_name: str = "Bootstrap.sh"

    def select_body(self, command: StartScriptCommand) -> str:
        return command.scripts.get(ScriptType.BASH, command.script_body)

    def bootstrap_bytes(self, body: str) -> bytes:
        return body.replace("\r\n", "\n").encode("utf-8")

    def command_line(self, bootstrap: Path, arguments: list[str]) -> list[str]:
        return [self.executable, str(bootstrap), *arguments]

    def prepare(self, workspace: Path, environment: dict[str, str]) -> None:
        trap = workspace / EXIT_TRAP_FILE
        trap.write_text(_EXIT_TRAP)
        if environment.get("BASH_ENV"):
            environment["TENTACLE_USER_BASH_ENV"] = environment["BASH_ENV"]
        environment["BASH_ENV"] = str(trap)
        environment["TENTACLE_EXIT_CODE_FILE"] = str(workspace / EXIT_CODE_FILE)


def _quote_powershell(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class PowerShell:
    executable: str = ""
    name: str = "PowerShell"
    bootstrap_name: str = "Bootstrap.ps1"

    @staticmethod
    def locate(environ: dict[str, str] | None = None) -> PowerShell:
        environ = dict(os.environ if environ is None else environ)
        system_root = environ.get("SystemRoot", r"C:\Windows")
        candidate = system_root + r"\System32\WindowsPowershell\v1.0\PowerShell.exe"
        executable = candidate if os.path.exists(candidate) else "PowerShell.exe"
        return PowerShell(executable=executable)

    def select_body(self, command: StartScriptCommand) -> str:
        return command.script_body

    def bootstrap_bytes(self, body: str) -> bytes:
        return b"\xef\xbb\xbf" + body.encode("utf-8")

    def command_line(self, bootstrap: Path, arguments: list[str]) -> list[str]:
        args = "".join(" " + _quote_powershell(a) for a in arguments)
        script = (
            "$ErrorActionPreference = 'Stop'; "
            f". {{. {_quote_powershell(str(bootstrap))}{args}; "
            "if ((test-path variable:global:lastexitcode)) { exit $LastExitCode }}"
        )
        return [
            self.executable,
            "-NonInteractive",
            "-NoProfile",
            "-NoLogo",
            "-ExecutionPolicy",
            "Unrestricted",
            "-Command",
            script,
        ]

    def prepare(self, workspace: Path, environment: dict[str, str]) -> None:
        return None


def shell_for_this_platform() -> Shell:
    return PowerShell.locate() if sys.platform == "win32" else Bash()
