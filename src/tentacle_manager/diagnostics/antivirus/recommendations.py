"""What to exclude for one Tentacle home, in the order Octopus recommends, and why.

Octopus's troubleshooting guide: exclude `<home>\\Tools` and `<home>\\Work` first, then
`<home>\\Files` and `<home>\\Logs`, each with its sub-directories (seed 001). On top of the
folders come full-path process exclusions for the programs the agent starts for every script:
its own interpreter and the shell. They come last because they are broad (everything those
programs open is skipped) and carry Microsoft's caveats, which travel with them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath, PureWindowsPath

import psutil

from tentacle_manager.agent.process.shell import shell_for_this_platform
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.instances.home import HomeLayout

FIRST = 1  # exclude these first
THEN = 2  # if problems remain
PROCESSES = 3  # broad: only when folder exclusions are not enough

FOLDERS = (
    (
        "Tools",
        FIRST,
        "Calamari and the other tools the server pushes are unpacked and started from here.",
    ),
    (
        "Work",
        FIRST,
        "Every script runs in a new workspace here: its files are written, made executable, "
        "run and deleted, and an on-access scanner inspects each step.",
    ),
    ("Files", THEN, "The package cache: packages are written here and read again later."),
    (
        "Logs",
        THEN,
        "The agent appends to its log all the time; a scanner that holds the file after each "
        "write slows every line.",
    ),
)

PROCESS_CAVEATS = (
    "A process exclusion skips the files the process opens; it does not exclude the program's "
    "own image file.",
    "It applies to real-time protection only: scheduled and on-demand scans still scan those "
    "files.",
    "Give the full path: an image name alone (bash.exe) excludes every program of that name, "
    "wherever it is.",
    "Wildcards (* and ?) work in full paths only.",
    "Exclusions set on the machine merge with those from Group Policy or Intune, and policy "
    "wins where they conflict.",
    "A process exclusion also turns off Network Protection and attack surface reduction rules "
    "for that process.",
    "An anti-virus exclusion does not stop an EDR sensor (Defender for Endpoint included) from "
    "hooking the process.",
)
_CONTROL = tuple(chr(code) for code in (*range(32), 127))


class Target(StrEnum):
    FOLDER = "folder"  # with its sub-directories
    PROCESS = "process"  # files opened by the program at this full path


@dataclass(frozen=True)
class Executable:
    path: PurePath
    reason: str


@dataclass(frozen=True)
class Recommendation:
    target: Target
    path: PurePath
    priority: int  # FIRST, THEN or PROCESSES
    reason: str


@dataclass(frozen=True)
class AgentAccount:
    """The user the agent runs as: ClamAV can exclude a user, not a program."""

    name: str | None  # None for a uid the user database does not know
    uid: int


def user_exclusion(account: AgentAccount | None, unknown: str) -> str:
    """ClamAV's setting that skips the agent's user: by name, or by uid for a nameless one;
    `unknown` stands for the user when the agent's account is not known."""
    if account is None:
        return f"OnAccessExcludeUname {unknown}"
    if account.name is None:
        return f"OnAccessExcludeUID {account.uid}"
    return f"OnAccessExcludeUname {account.name}"


def is_windows_path(path: PurePath) -> bool:
    return isinstance(path, PureWindowsPath)


def validate_path(field: str, path: PurePath) -> None:
    """Paths go into scripts and config files verbatim, so they must be whole and one line."""
    text = str(path)
    if not path.is_absolute():
        raise AdvisorError(field, f"must be an absolute path, not {text!r}")
    if any(character in text for character in _CONTROL):
        raise AdvisorError(field, f"must not contain control characters such as newlines: {text!r}")


def recommend(home: PurePath, executables: Sequence[Executable]) -> list[Recommendation]:
    """The folders of `home` (any OS's path flavour, so a Windows plan can be made anywhere),
    then the executables, each checked first."""
    validate_path("home", home)
    for executable in executables:
        validate_path("executable", executable.path)
    folders = [
        Recommendation(Target.FOLDER, home / name, priority, reason)
        for name, priority, reason in FOLDERS
    ]
    programs = [
        Recommendation(Target.PROCESS, executable.path, PROCESSES, executable.reason)
        for executable in executables
    ]
    return folders + programs


def local_executables() -> list[Executable]:
    """The programs this machine's agent starts for every script, as their real image paths:
    process exclusions match the image, so a venv's python symlink or /bin/bash (a link into
    /usr/bin on merged-/usr systems) would match nothing."""
    frozen = getattr(sys, "frozen", False)
    agent = Executable(
        Path(psutil.Process().exe()),
        "The agent's own program: it writes every workspace, output log and log line."
        if frozen
        else "The Python interpreter the agent runs on: it writes every workspace, output log "
        "and log line. Every other program run by this interpreter is excluded too, so a "
        "dedicated installation keeps the exclusion narrow.",
    )
    shell = shell_for_this_platform()
    return [
        agent,
        Executable(
            Path(os.path.realpath(shell.executable)),
            f"Runs every {shell.name} script step; the files it opens are the scripts and "
            "their bootstraps in Work.",
        ),
    ]


def account_of(home: Path) -> AgentAccount | None:
    """The owner of `<home>/Work`: the agent creates it, so it runs as that user. None where
    there is no Work yet or no user database (Windows)."""
    try:
        import pwd
    except ImportError:
        return None
    try:
        uid = HomeLayout(home).work.stat().st_uid
    except OSError:
        return None
    try:
        return AgentAccount(pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return AgentAccount(None, uid)
