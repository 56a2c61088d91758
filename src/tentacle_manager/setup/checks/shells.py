"""Script shells: bash off Windows, PowerShell on Windows, and what a PowerShell profile costs.

Tentacle's only prerequisite was "powershell.exe prints something containing `Major`". Here
the shell the agent will start is checked for its version, and the PowerShell profile is
timed: a profile that takes seconds to load makes every step that loads it slow to start,
which users meet as "steps are slow to start" (seed 001) long after setup.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

from tentacle_manager.agent.process.shell import PowerShell
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    CommandOutput,
    run_command,
)

BASH_HELP = "https://www.gnu.org/software/bash/"
POWERSHELL_HELP = "https://learn.microsoft.com/powershell/scripting/install/installing-powershell"
SLOW_START_HELP = "https://octopus.com/docs/support/troubleshooting-failed-or-hanging-tasks"
MINIMUM_WINDOWS_POWERSHELL = (5, 1)
PROFILE_COST_LIMIT = 1.0  # seconds a profile may add before users notice slow steps
PROFILE_SAMPLES = 2  # runs with and without the profile; the fastest of each is compared
_COMMAND_TIMEOUT = 15.0  # a PowerShell cold start on a busy Windows machine can take 10 s
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
# Prints the profile paths; $PROFILE is set even under -NoProfile, so both runs do equal work.
_PROFILE_PATHS = (
    "$PROFILE.AllUsersAllHosts; $PROFILE.AllUsersCurrentHost; "
    "$PROFILE.CurrentUserAllHosts; $PROFILE.CurrentUserCurrentHost"
)
_QUIET = ("-NoLogo", "-NonInteractive")


def bash_check() -> Check:
    return Check("shell-bash", "Script shell: bash", _bash)


def powershell_checks() -> list[Check]:
    """Windows needs a PowerShell to run scripts at all; elsewhere only the profile cost of
    pwsh is of interest, and only when pwsh is installed."""
    profile = Check(
        "shell-powershell-profile",
        "PowerShell profile start-up cost",
        _profile_cost,
        timeout=_COMMAND_TIMEOUT * 2 * PROFILE_SAMPLES,
    )
    if sys.platform != "win32":
        return [profile]
    version = Check(
        "shell-powershell", "Script shell: PowerShell", _powershell, timeout=_COMMAND_TIMEOUT * 2
    )
    return [version, profile]


async def _bash(context: CheckContext) -> CheckResult:
    path = await asyncio.to_thread(shutil.which, "bash")
    if path is None:
        return CheckResult(
            CheckState.FAILED,
            "bash was not found on PATH; the agent runs every script with bash.",
            "Install bash with the system's package manager and make sure it is on PATH.",
            BASH_HELP,
        )
    output = await run_command([path, "--version"], timeout=_COMMAND_TIMEOUT)
    version = _version_in(output.stdout)
    if not output.ok or version is None:
        return CheckResult(
            CheckState.FAILED,
            f"{path} did not report its version ({output.ending}).",
            "Reinstall bash; the output below shows what it printed.",
            BASH_HELP,
        )
    return CheckResult(CheckState.PASSED, f"bash {_dotted(version)} at {path}.")


async def _powershell(context: CheckContext) -> CheckResult:
    windows = PowerShell.locate().executable
    found = await _powershell_version(windows)
    if found is not None and found >= MINIMUM_WINDOWS_POWERSHELL:
        return CheckResult(CheckState.PASSED, f"Windows PowerShell {_dotted(found)} ({windows}).")
    pwsh = await asyncio.to_thread(shutil.which, "pwsh")
    core = None if pwsh is None else await _powershell_version(pwsh)
    if pwsh is not None and core is not None:
        return CheckResult(CheckState.PASSED, f"PowerShell {_dotted(core)} ({pwsh}).")
    have = "none" if found is None else f"Windows PowerShell {_dotted(found)}"
    return CheckResult(
        CheckState.FAILED,
        f"PowerShell 5.1 or later, or PowerShell 7 (pwsh), is needed to run scripts; "
        f"found: {have}.",
        "Install Windows Management Framework 5.1 or PowerShell 7, then check again.",
        POWERSHELL_HELP,
    )


async def _powershell_version(executable: str) -> tuple[int, ...] | None:
    output = await run_command(
        [executable, *_QUIET, "-NoProfile", "-Command", "$PSVersionTable.PSVersion.ToString()"],
        timeout=_COMMAND_TIMEOUT,
    )
    return _version_in(output.stdout) if output.ok else None


async def _profile_cost(context: CheckContext) -> CheckResult:
    executable = await _measured_powershell()
    if executable is None:
        return CheckResult(
            CheckState.PASSED,
            "Not applicable: PowerShell (pwsh) is not installed, so no profile can slow "
            "scripts down.",
        )
    without, with_profile = [], []
    # One after another, as concurrent runs would slow each other; -NoProfile first, so a cold
    # start inflates it and not the profile's cost. A slow pair is conclusive already.
    for _ in range(PROFILE_SAMPLES):
        without.append(await _start(executable, profile=False))
        with_profile.append(await _start(executable, profile=True))
        pair = (without[-1], with_profile[-1])
        if not all(o.ok for o in pair) or pair[1].duration - pair[0].duration > PROFILE_COST_LIMIT:
            break
    failed = next((output for output in [*without, *with_profile] if not output.ok), None)
    if failed is not None:
        return CheckResult(
            CheckState.WARNING,
            f"Could not time PowerShell's start-up: {failed.command_line} ended with "
            f"{failed.ending}.",
            "Run the command below by hand as the user the agent will run as; a failing "
            "profile also breaks steps that load it.",
            SLOW_START_HELP,
        )
    bare = min(output.duration for output in without)
    loaded = min(output.duration for output in with_profile)
    cost = loaded - bare
    timings = f"{loaded:.2f} s with the profile, {bare:.2f} s with -NoProfile"
    if cost <= PROFILE_COST_LIMIT:
        return CheckResult(CheckState.PASSED, f"PowerShell starts in {timings}.")
    profiles = await asyncio.to_thread(_existing_profiles, without[0].stdout)
    return CheckResult(
        CheckState.WARNING,
        f"The PowerShell profile adds {cost:.1f} s to every start ({timings}); steps that "
        "load the profile will be slow to start.",
        f"Trim or remove the profile ({', '.join(profiles) or 'see $PROFILE'}), or set the "
        "deployment variable Octopus.Action.PowerShell.ExecuteWithoutProfile to True.",
        SLOW_START_HELP,
    )


async def _measured_powershell() -> str | None:
    """The PowerShell whose profile matters: the one the agent starts on Windows, pwsh
    elsewhere."""
    if sys.platform == "win32":
        return PowerShell.locate().executable
    return await asyncio.to_thread(shutil.which, "pwsh")


async def _start(executable: str, *, profile: bool) -> CommandOutput:
    no_profile = () if profile else ("-NoProfile",)
    return await run_command(
        [executable, *_QUIET, *no_profile, "-Command", _PROFILE_PATHS], timeout=_COMMAND_TIMEOUT
    )


def _existing_profiles(printed: str) -> list[str]:
    return [line.strip() for line in printed.splitlines() if line.strip() and Path(line).is_file()]


def _version_in(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    return None if match is None else tuple(int(part) for part in match.groups() if part)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
