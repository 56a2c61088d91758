"""Everything the probes saw on this machine, gathered by one blocking call meant for an
executor, with a note for each probe that could not look."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tentacle_manager.diagnostics.antivirus.clamd import (
    ClamdConfig,
    ClamdConfigProblem,
    configs_in_use,
    read_clamd_conf,
)
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.products import PACKAGES
from tentacle_manager.platform.antivirus.audit import configured_exec_rules, loaded_exec_rules
from tentacle_manager.platform.antivirus.fanotify import scan_fanotify
from tentacle_manager.platform.antivirus.packages import installed_packages
from tentacle_manager.platform.antivirus.processes import running_processes
from tentacle_manager.platform.antivirus.records import (
    AuditRule,
    FanotifyGroup,
    InstalledPackage,
    InstalledService,
    ProbeUnavailable,
    RunningProcess,
)
from tentacle_manager.platform.antivirus.systemd_units import systemd_services
from tentacle_manager.platform.antivirus.windows import (
    WindowsReportError,
    WindowsSnapshot,
    query_windows,
)
from tentacle_manager.platform.services.spec import Runner, is_root, run_command

T = TypeVar("T")


@dataclass(frozen=True)
class Observations:
    processes: tuple[RunningProcess, ...] = ()
    services: tuple[InstalledService, ...] = ()
    drivers: tuple[str, ...] = ()
    packages: tuple[InstalledPackage, ...] = ()
    fanotify: tuple[FanotifyGroup, ...] = ()
    audit_rules: tuple[AuditRule, ...] = ()
    clamd_configs: tuple[ClamdConfig | ClamdConfigProblem, ...] = ()  # the one in use first
    windows: WindowsSnapshot | None = None  # Defender's status and lists come with it
    not_checked: tuple[str, ...] = ()  # what a probe could not look at, and why


def observe(
    *,
    clamd_conf: Path | None = None,
    platform: str = sys.platform,
    runner: Runner = run_command,
) -> Observations:
    """Run the probes for `platform`. A clamd.conf given by the caller must be readable and
    valid (AdvisorError otherwise); one found on the machine that is not is reported as such."""
    notes: list[str] = []
    processes = tuple(running_processes())
    configs = _clamd_configs(clamd_conf, processes)
    if platform == "win32":
        windows = _attempt(notes, lambda: _windows(runner), None)
        if windows is not None and windows.drivers_error is not None:
            notes.append(
                f"drivers: Get-CimInstance Win32_SystemDriver failed: {windows.drivers_error}"
            )
        return Observations(
            processes=processes,
            services=windows.services if windows else (),
            drivers=windows.drivers if windows else (),
            clamd_configs=configs,
            windows=windows,
            not_checked=tuple(notes),
        )
    if not platform.startswith("linux"):
        notes.append(f"services, packages, fanotify and audit rules: not probed on {platform}")
        return Observations(processes=processes, clamd_configs=configs, not_checked=tuple(notes))
    scan = _attempt(notes, scan_fanotify, None)
    if scan is not None and scan.hidden:
        remedy = "" if is_root() else "; run as root to read them"
        notes.append(f"fanotify: the fds of {scan.hidden} process(es) could not be read{remedy}")
    return Observations(
        processes=processes,
        services=tuple(_attempt(notes, lambda: systemd_services(runner), [])),
        packages=tuple(_attempt(notes, lambda: installed_packages(PACKAGES, runner), [])),
        fanotify=scan.groups if scan is not None else (),
        audit_rules=tuple(_audit_rules(notes, runner)),
        clamd_configs=configs,
        not_checked=tuple(notes),
    )


def _attempt(notes: list[str], probe: Callable[[], T], nothing: T) -> T:
    try:
        return probe()
    except ProbeUnavailable as unavailable:
        notes.append(str(unavailable))
        return nothing


def _windows(runner: Runner) -> WindowsSnapshot:
    """Output that breaks the query's format means Defender could not be read, not that the
    whole advice is lost: the error becomes the probe's note."""
    try:
        return query_windows(runner)
    except WindowsReportError as error:
        raise ProbeUnavailable(f"Windows: {error}") from None


def _audit_rules(notes: list[str], runner: Runner) -> list[AuditRule]:
    """The kernel's rules when we may read them, else the rule files (what the next boot
    loads), so a non-root run still sees most of the picture."""
    try:
        return loaded_exec_rules(runner)
    except ProbeUnavailable as unavailable:
        notes.append(f"{unavailable}; the rule files were read instead")
    return _attempt(notes, configured_exec_rules, [])


def _clamd_configs(
    given: Path | None, processes: tuple[RunningProcess, ...]
) -> tuple[ClamdConfig | ClamdConfigProblem, ...]:
    if given is not None:
        return (read_clamd_conf(given),)
    found: list[ClamdConfig | ClamdConfigProblem] = []
    for path in configs_in_use(processes):
        try:
            found.append(read_clamd_conf(path))
        except AdvisorError as error:
            found.append(ClamdConfigProblem(path, str(error)))
    return tuple(found)
