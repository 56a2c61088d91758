"""The service units systemd knows, with their state: a security agent installed as a service
shows here even when its process has a name no signature lists."""

from __future__ import annotations

from tentacle_manager.platform.antivirus.records import InstalledService, ProbeUnavailable
from tentacle_manager.platform.services.spec import Runner, run_command

LIST_UNITS = (
    "systemctl",
    "list-units",
    "--type=service",
    "--all",
    "--no-legend",
    "--plain",
    "--no-pager",
)


def systemd_services(runner: Runner = run_command) -> list[InstalledService]:
    done = runner(LIST_UNITS)
    if done.returncode != 0:
        first = done.output.splitlines()[0] if done.output else f"exit code {done.returncode}"
        raise ProbeUnavailable(f"services: systemctl failed: {first}")
    return parse_units(done.stdout)


def parse_units(text: str) -> list[InstalledService]:
    """`UNIT LOAD ACTIVE SUB DESCRIPTION` lines; units whose file is gone (not-found) are
    remembered by systemd but installed nowhere, so they are left out."""
    found = []
    for line in text.splitlines():
        fields = line.split(maxsplit=4)
        if len(fields) < 4 or not fields[0].endswith(".service") or fields[1] == "not-found":
            continue
        found.append(
            InstalledService(fields[0].removesuffix(".service"), f"{fields[2]}/{fields[3]}")
        )
    return found
