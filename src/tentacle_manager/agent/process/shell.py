"""How a script body becomes a bootstrap file and a command line, per operating system.

Bash (Linux, macOS) and Windows PowerShell, with Tentacle's PowerShell command line. One
deliberate difference from Tentacle: arguments are passed as separate argv entries (bash) or as
single-quoted PowerShell strings, never joined unquoted.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tentacle_manager.agent.process.startup_detection import bash_guard, powershell_guard
from tentacle_manager.contracts import ScriptType, StartScriptCommand


class Shell(Protocol):
    name: str
    executable: str
    bootstrap_name: str

    def select_body(self, command: StartScriptCommand) -> str: ...

    def bootstrap_bytes(self, body: str) -> bytes: ...

    def command_line(self, bootstrap: Path, arguments: list[str]) -> list[str]: ...

    def startup_guard(self, workspace: Path) -> str: ...


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

    def startup_guard(self, workspace: Path) -> str:
        return bash_guard(workspace)


_POWERSHELL_QUOTES = re.compile("(['\u2018\u2019\u201a\u201b])")


def powershell_literal(value: str) -> str:
    """A single-quoted PowerShell string. PowerShell also ends one at a typographic quote
    (U+2018 to U+201B), so each of those is doubled too, not only the ASCII one: a home or an
    argument written with curly apostrophes must not end the string (Tentacle doubles only ')."""
    return "'" + _POWERSHELL_QUOTES.sub(r"\1\1", value) + "'"


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
        args = "".join(" " + powershell_literal(a) for a in arguments)
        script = (
            "$ErrorActionPreference = 'Stop'; "
            f". {{. {powershell_literal(str(bootstrap))}{args}; "
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

    def startup_guard(self, workspace: Path) -> str:
        return powershell_guard(workspace)


def shell_for_this_platform() -> Shell:
    return PowerShell.locate() if sys.platform == "win32" else Bash()
