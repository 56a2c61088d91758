"""Microsoft Defender Antivirus: whether it is the active engine, whether its exclusion lists
can be read, and whether they already cover a recommended exclusion.

Reading the lists is harder than writing them (reference 2.7). Get-MpPreference shows them
only to administrators: older platforms print "N/A: Must be admin to view exclusions", newer
ones "N/A: Must be an administrator to view exclusions", and since 4.18.23070 a standard user
may just get nothing. The HideExclusionsFromLocalAdmins policy hides them from administrators
too ("N/A: Administrators are not allowed to view exclusions"). And when another anti-virus is
the active one, Defender runs in passive mode or not at all, and its lists mean nothing. So a
list is visible, unknown for want of rights, hidden by policy, or unreadable, and each has
its own coverage state.

Matching follows Defender: paths are case-insensitive, a trailing backslash means nothing, a
folder exclusion covers its sub-folders, `%VAR%` is expanded, and `*` / `?` are wildcards
within one path component. A process exclusion given as a bare image name matches that name
anywhere, which covers our program but far more, so the detail says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PureWindowsPath
from typing import Any

from tentacle_manager.diagnostics.antivirus.coverage import Coverage, CoverageState
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.recommendations import Recommendation, Target
from tentacle_manager.platform.antivirus.windows import WindowsSnapshot

NORMAL_MODE = "Normal"
_VARIABLE = re.compile(r"%([^%]+)%")
_CHILD = "tentacle-probe"  # a name to test whether a pattern matches inside a folder
_WILDCARDS = {"*": r"[^\\]*", "?": r"[^\\]"}


class Visibility(StrEnum):
    VISIBLE = "visible"
    NOT_ADMIN = "not administrator"
    HIDDEN_BY_POLICY = "hidden by policy"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ExclusionList:
    visibility: Visibility
    entries: tuple[str, ...] = ()
    reason: str = ""  # why it is not visible


@dataclass(frozen=True)
class DefenderStatus:
    active: bool
    reason: str  # why Defender is not scanning on access; "" when it is
    real_time: bool | None
    paths: ExclusionList
    processes: ExclusionList


def defender_status(snapshot: WindowsSnapshot) -> DefenderStatus:
    """Read Defender's part of the Windows query; errors name the field and the output."""
    status = _Record(snapshot.defender_status or {}, f"{snapshot.source}: DefenderStatus")
    preference = _Record(
        snapshot.defender_preference or {}, f"{snapshot.source}: DefenderPreference"
    )
    reason = _inactive_reason(snapshot, status, status.text("AMRunningMode"))
    hidden = preference.flag("HideExclusionsFromLocalAdmins") is True
    return DefenderStatus(
        active=not reason,
        reason=reason,
        real_time=status.flag("RealTimeProtectionEnabled"),
        paths=_exclusion_list(snapshot, preference, "ExclusionPath", hidden),
        processes=_exclusion_list(snapshot, preference, "ExclusionProcess", hidden),
    )


def _inactive_reason(snapshot: WindowsSnapshot, status: _Record, mode: str | None) -> str:
    if snapshot.defender_status_error is not None:
        return f"Get-MpComputerStatus failed: {snapshot.defender_status_error}"
    if snapshot.defender_status is None:
        return "Get-MpComputerStatus returned nothing."
    if status.flag("AMServiceEnabled") is False:
        return "The Defender service is not running (AMServiceEnabled is false)."
    if status.flag("AntivirusEnabled") is False:
        return "Defender Antivirus is turned off (AntivirusEnabled is false)."
    if mode is not None and mode != NORMAL_MODE:
        return (
            f"AMRunningMode is '{mode}', not '{NORMAL_MODE}': another anti-virus is the active "
            "one and Defender does not scan files on access."
        )
    return ""


def _exclusion_list(
    snapshot: WindowsSnapshot, preference: _Record, field: str, hidden: bool
) -> ExclusionList:
    if snapshot.defender_preference_error is not None:
        return ExclusionList(
            Visibility.UNREADABLE,
            reason=f"Get-MpPreference failed: {snapshot.defender_preference_error}",
        )
    entries = preference.texts(field)
    for entry in entries:
        if entry.startswith("N/A"):
            return ExclusionList(_visibility_of(entry), reason=f"Defender answers '{entry}'.")
    if not entries and hidden:
        return ExclusionList(
            Visibility.HIDDEN_BY_POLICY, reason="HideExclusionsFromLocalAdmins is on."
        )
    if not entries and not snapshot.is_administrator:
        return ExclusionList(
            Visibility.NOT_ADMIN,
            reason="Defender shows no exclusions to a user who is not an administrator.",
        )
    return ExclusionList(Visibility.VISIBLE, entries)


def _visibility_of(placeholder: str) -> Visibility:
    words = placeholder.casefold()
    if "not allowed" in words:
        return Visibility.HIDDEN_BY_POLICY
    if "must be" in words:
        return Visibility.NOT_ADMIN
    return Visibility.UNREADABLE


def defender_coverage(
    status: DefenderStatus, recommendation: Recommendation, environment: Mapping[str, str]
) -> Coverage:
    if not status.active:
        return Coverage(CoverageState.INACTIVE, status.reason)
    folder = recommendation.target is Target.FOLDER
    listing = status.paths if folder else status.processes
    field = "ExclusionPath" if folder else "ExclusionProcess"
    if listing.visibility is Visibility.NOT_ADMIN:
        return Coverage(
            CoverageState.NOT_ADMIN,
            f"{listing.reason} Run the advisor elevated to read {field}.",
        )
    if listing.visibility is Visibility.HIDDEN_BY_POLICY:
        return Coverage(
            CoverageState.HIDDEN_BY_POLICY,
            f"{listing.reason} Ask the team that sets the Defender policy whether it is excluded.",
        )
    if listing.visibility is Visibility.UNREADABLE:
        return Coverage(CoverageState.UNKNOWN, listing.reason)
    target = PureWindowsPath(str(recommendation.path))
    for entry in listing.entries:
        how = (_covers_folder if folder else _covers_process)(entry, target, environment)
        if how is not None:
            return Coverage(CoverageState.SET, f"{field} entry '{entry}'{how}.")
    return Coverage(CoverageState.NOT_SET, f"No {field} entry covers it.")


def _covers_folder(
    entry: str, target: PureWindowsPath, environment: Mapping[str, str]
) -> str | None:
    expanded = _expand(entry, environment)
    if expanded is None:
        return None
    if _has_wildcard(expanded):
        pattern = _wildcard(expanded)
        candidates = [target, *target.parents, target / _CHILD]
        if any(pattern.fullmatch(str(candidate)) for candidate in candidates):
            return " (a wildcard: confirm with MpCmdRun.exe -CheckExclusion -path)"
        return None
    base = PureWindowsPath(expanded)
    if base.is_absolute() and target.is_relative_to(base):
        return "" if base == target else " (a parent folder)"
    return None


def _covers_process(
    entry: str, target: PureWindowsPath, environment: Mapping[str, str]
) -> str | None:
    expanded = _expand(entry, environment)
    if expanded is None:
        return None
    if "\\" not in expanded and "/" not in expanded:
        if expanded.casefold() == target.name.casefold():
            return (
                " (an image name: every program of that name is excluded, wherever it is; "
                "prefer the full path)"
            )
        return None
    if _has_wildcard(expanded):
        return "" if _wildcard(expanded).fullmatch(str(target)) else None
    return "" if PureWindowsPath(expanded) == target else None


def _expand(entry: str, environment: Mapping[str, str]) -> str | None:
    """`%VAR%` replaced, case-insensitively as Windows does; None if a variable is unknown."""
    known = {name.casefold(): value for name, value in environment.items()}
    missing = False

    def value_of(match: re.Match[str]) -> str:
        nonlocal missing
        value = known.get(match.group(1).casefold())
        missing = missing or value is None
        return value or ""

    expanded = _VARIABLE.sub(value_of, entry)
    return None if missing else expanded


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _wildcard(text: str) -> re.Pattern[str]:
    """`*` is any run and `?` any one character, within one path component."""
    cleaned = text.replace("/", "\\").rstrip("\\")
    parts = (_WILDCARDS.get(c) or re.escape(c) for c in cleaned)
    return re.compile("".join(parts), re.IGNORECASE)


class _Record:
    """Typed reads of one cmdlet's fields; each failure names the field."""

    def __init__(self, values: Mapping[str, Any], source: str) -> None:
        self.values = values
        self.source = source

    def _error(self, field: str, rule: str) -> AdvisorError:
        return AdvisorError(f"{self.source}.{field}", rule)

    def flag(self, field: str) -> bool | None:
        value = self.values.get(field)
        if value is not None and not isinstance(value, bool):
            raise self._error(field, f"must be true, false or null, not {json.dumps(value)}")
        return value

    def text(self, field: str) -> str | None:
        value = self.values.get(field)
        if value is not None and not isinstance(value, str):
            raise self._error(field, f"must be a string or null, not {json.dumps(value)}")
        return value

    def texts(self, field: str) -> tuple[str, ...]:
        """A list of strings; PowerShell prints a one-item list as the item, so that is one."""
        value = self.values.get(field)
        items = [] if value is None else value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self._error(f"{field}[{index}]", f"must be a string, not {json.dumps(item)}")
        return tuple(items)
