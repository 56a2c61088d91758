"""Noticing an interpreter that starts but never reaches the script's first line (-47).

Security products can hang powershell.exe before it runs a single line of the script
(OctopusTentacle#1208); the process exists, so it looks like a slow script for ever. Tentacle's
answer, kept here: a script whose body contains MARKER gets guard code in its place and a
"should run" file beside it. The guard's first act is to create the "started" file. If, after
the start-up timeout, the agent can still create that file itself, the interpreter never got
going: the script ends at -47 and the agent stops waiting for it. A late start then finds the
file taken (or the should-run file gone) and exits by itself.

Tentacle only guards PowerShell on Windows; the same guard exists here for bash as well.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = "# TENTACLE-POWERSHELL-STARTUP-DETECTION-AND-GUARD-MUST-BE-AT-THE-START-OF-THE-SCRIPT"
SHOULD_RUN_FILE = ".octopus_powershell_should_run"
STARTED_FILE = ".octopus_powershell_started"
ALREADY_STARTED = "PowerShell startup detection: Started file already exists, exiting"
NOT_SHOULD_RUN = "PowerShell startup detection: Should-run file does not exist, exiting"


def inject(body: str, guard: str, workspace: Path) -> str:
    """Replace the marker with the guard and arm the should-run file; no marker, no change."""
    if MARKER not in body:
        return body
    (workspace / SHOULD_RUN_FILE).touch()
    return body.replace(MARKER, guard, 1)


def is_guarded(workspace: Path) -> bool:
    return (workspace / SHOULD_RUN_FILE).exists()


def claim_start(workspace: Path) -> bool:
    """Take the started file for the agent; True means the script never started."""
    try:
        fd = os.open(workspace / STARTED_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    (workspace / SHOULD_RUN_FILE).unlink(missing_ok=True)
    return True


def powershell_guard(workspace: Path) -> str:
    started = str(workspace / STARTED_FILE).replace("'", "''")
    should_run = str(workspace / SHOULD_RUN_FILE).replace("'", "''")
    return (
        f"try {{ New-Item -ItemType File -Path '{started}' -ErrorAction Stop | Out-Null }} "
        f"catch {{ Write-Host '{ALREADY_STARTED}'; exit -47 }}\n"
        f"if (-not (Test-Path '{should_run}')) {{ Write-Host '{NOT_SHOULD_RUN}'; exit -47 }}"
    )


def bash_guard(workspace: Path) -> str:
    """Exit status 209 is -47 modulo 256: bash cannot exit with a negative status."""
    started = str(workspace / STARTED_FILE).replace("'", "'\\''")
    should_run = str(workspace / SHOULD_RUN_FILE).replace("'", "'\\''")
    return (
        f"if ! ( set -o noclobber; : > '{started}' ) 2>/dev/null; then "
        f"echo '{ALREADY_STARTED}'; exit 209; fi\n"
        f"if [ ! -f '{should_run}' ]; then echo '{NOT_SHOULD_RUN}'; exit 209; fi"
    )
