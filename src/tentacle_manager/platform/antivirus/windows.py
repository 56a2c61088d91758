"""Everything the advisor asks Windows, in one PowerShell run: whether we are elevated, the
services, the running drivers, and Defender's status and exclusion lists.

One run, because PowerShell takes a second or more to start. The script is passed in clear
with -Command, not -EncodedCommand: encoded PowerShell is what EDR rules flag, and the hosts
this runs on are the ones with EDRs. It holds no double quotes, which CreateProcess quoting
would have to escape. Each part runs in its own try, so a failing cmdlet (Defender's fail
with 0x800106ba when Defender is not the active anti-virus) leaves its error in the report
instead of losing the rest. Non-ASCII characters are escaped as \\uXXXX before printing, so
the console code page cannot garble a path on its way to us.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.platform.antivirus.records import InstalledService, ProbeUnavailable
from tentacle_manager.platform.services.spec import Runner, run_command

STATUS_FIELDS = (
    "AMServiceEnabled",
    "AntivirusEnabled",
    "RealTimeProtectionEnabled",
    "AMRunningMode",
    "AMProductVersion",
)
PREFERENCE_FIELDS = (
    "ExclusionPath",
    "ExclusionProcess",
    "ExclusionExtension",
    "HideExclusionsFromLocalAdmins",
)
QUERY_STATEMENTS = (
    "$ErrorActionPreference = 'Stop'",
    "$report = [ordered]@{}",
    "$principal = [Security.Principal.WindowsPrincipal]"
    "[Security.Principal.WindowsIdentity]::GetCurrent()",
    "$report.IsAdministrator = $principal.IsInRole("
    "[Security.Principal.WindowsBuiltInRole]::Administrator)",
    "$report.Services = @(Get-Service -ErrorAction SilentlyContinue | ForEach-Object "
    "{ [ordered]@{ Name = $_.Name; Status = [string]$_.Status } })",
    "try { $report.Drivers = @(Get-CimInstance -ClassName Win32_SystemDriver "
    "-Filter 'State=''Running''' | ForEach-Object { $_.Name }) } "
    "catch { $report.DriversError = $_.Exception.Message }",
    "try { $report.DefenderStatus = Get-MpComputerStatus | Select-Object "
    + ", ".join(STATUS_FIELDS)
    + " } catch { $report.DefenderStatusError = $_.Exception.Message }",
    "try { $report.DefenderPreference = Get-MpPreference | Select-Object "
    + ", ".join(PREFERENCE_FIELDS)
    + " } catch { $report.DefenderPreferenceError = $_.Exception.Message }",
    "$json = $report | ConvertTo-Json -Depth 4 -Compress",
    "[regex]::Replace($json, '[^\\x00-\\x7F]', { param($m) '\\u{0:x4}' -f [int][char]$m.Value })",
)
QUERY_SCRIPT = "; ".join(QUERY_STATEMENTS)
QUERY_COMMAND = (
    "powershell.exe",
    "-NoLogo",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    QUERY_SCRIPT,
)


class WindowsReportError(ProblemsError):
    """The query's output does not have the shape the script prints (fields are JSON paths)."""


@dataclass(frozen=True)
class WindowsSnapshot:
    """What the query saw. Defender's parts are kept as the cmdlets gave them: reading them is
    the advisor's job, and a failure's message is evidence too."""

    source: str  # where the output came from, to name in later errors
    is_administrator: bool
    services: tuple[InstalledService, ...]
    drivers: tuple[str, ...]
    drivers_error: str | None
    defender_status: Mapping[str, Any] | None
    defender_status_error: str | None
    defender_preference: Mapping[str, Any] | None
    defender_preference_error: str | None


def query_windows(runner: Runner = run_command) -> WindowsSnapshot:
    done = runner(QUERY_COMMAND)
    if done.returncode != 0:
        raise ProbeUnavailable(
            f"Windows: powershell.exe failed: {done.output or f'exit code {done.returncode}'}"
        )
    return parse_snapshot(done.stdout, "powershell.exe output")


def parse_snapshot(text: str, source: str) -> WindowsSnapshot:
    """Read the query's JSON; `source` names where it came from in every error."""
    try:
        report = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as error:
        raise WindowsReportError({source: f"is not JSON: {error}"}) from None
    if not isinstance(report, dict):
        raise WindowsReportError({source: "must be a JSON object"})
    fields = _Fields(report, source)
    return WindowsSnapshot(
        source=source,
        is_administrator=fields.boolean("IsAdministrator"),
        services=tuple(
            InstalledService(
                fields.text_in(item, f"Services[{i}]", "Name"),
                fields.text_in(item, f"Services[{i}]", "Status"),
            )
            for i, item in enumerate(fields.items("Services", dict))
        ),
        drivers=tuple(fields.items("Drivers", str)),
        drivers_error=fields.optional_text("DriversError"),
        defender_status=fields.optional_object("DefenderStatus"),
        defender_status_error=fields.optional_text("DefenderStatusError"),
        defender_preference=fields.optional_object("DefenderPreference"),
        defender_preference_error=fields.optional_text("DefenderPreferenceError"),
    )


class _Fields:
    """Typed reads of the report's fields; each failure names the field's JSON path."""

    def __init__(self, report: dict[str, Any], source: str) -> None:
        self.report = report
        self.source = source

    def _error(self, field: str, rule: str) -> WindowsReportError:
        return WindowsReportError({f"{self.source}: {field}": rule})

    def boolean(self, field: str) -> bool:
        value = self.report.get(field)
        if not isinstance(value, bool):
            raise self._error(field, f"must be true or false, not {json.dumps(value)}")
        return value

    def items(self, field: str, kind: type) -> list[Any]:
        """A list of `kind`; PowerShell prints a one-item list as the item, so that is one too."""
        value = self.report.get(field) or []
        value = value if isinstance(value, list) else [value]
        for index, item in enumerate(value):
            if not isinstance(item, kind):
                wanted = "an object" if kind is dict else "a string"
                raise self._error(f"{field}[{index}]", f"must be {wanted}, not {json.dumps(item)}")
        return value

    def text_in(self, item: dict[str, Any], path: str, key: str) -> str:
        value = item.get(key)
        if not isinstance(value, str):
            raise self._error(f"{path}.{key}", f"must be a string, not {json.dumps(value)}")
        return value

    def optional_text(self, field: str) -> str | None:
        value = self.report.get(field)
        if value is not None and not isinstance(value, str):
            raise self._error(field, f"must be a string or null, not {json.dumps(value)}")
        return value

    def optional_object(self, field: str) -> dict[str, Any] | None:
        value = self.report.get(field)
        if value is not None and not isinstance(value, dict):
            raise self._error(field, f"must be an object or null, not {json.dumps(value)}")
        return value
