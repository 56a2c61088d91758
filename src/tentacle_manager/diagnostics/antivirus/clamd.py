"""clamd.conf, read the way clamd reads it, and whether it already spares the agent's folders.

The reading follows ClamAV's option parser (common/optparser.c): a line is `Name value`;
leading blanks are skipped; lines of one character and lines starting with `#` are comments;
the value runs to the end of the line with surrounding blanks trimmed, and a value starting
with `"` ends at the line's last `"`. clamd refuses a file that still has the `Example` line,
an option without a value or an unclosed quote, and so do we, naming the line. A line longer
than clamd's 511-character read buffer would be split by clamd, so it is refused too. For an
option given once, the first occurrence counts, as in clamd.

What the settings mean for exclusions:

- `OnAccessExcludePath` is a path, not a pattern, and covers its sub-directories ("excluding
  '%s' (and all sub-directories)", clamonacc's own log line).
- `OnAccessExcludeUname`, `OnAccessExcludeUID` and `OnAccessExcludeRootUID` skip every file a
  user's processes open: ClamAV's only way to spare a program is to spare its user.
- `ExcludePath` is a POSIX extended regular expression for clamd's own scans (clamdscan), not
  for on-access scanning; it is matched here with Python's `re`, which reads the usual path
  patterns the same way.
- On-access scanning happens only when clamonacc runs, and it watches the
  `OnAccessIncludePath` trees or `OnAccessMountPath` mounts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tentacle_manager.diagnostics.antivirus.coverage import Coverage, CoverageState
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.recommendations import (
    AgentAccount,
    Recommendation,
    Target,
    user_exclusion,
)
from tentacle_manager.platform.antivirus.records import RunningProcess

DEFAULT_LOCATIONS = (
    Path("/etc/clamav/clamd.conf"),  # Debian, Ubuntu
    Path("/etc/clamd.d/scan.conf"),  # Fedora, RHEL
    Path("/usr/local/etc/clamd.conf"),  # built from source
)
LINE_LIMIT = 511
_TRUE = {"yes", "true", "1"}
_LINES = re.compile(r"[^\n]*\n|[^\n]+$")  # as fgets reads them: only \n ends a line
_CHILD = "tentacle-probe"  # a name to test whether a pattern matches inside a folder


@dataclass(frozen=True)
class ClamdSetting:
    name: str
    value: str
    line: int


@dataclass(frozen=True)
class ClamdConfig:
    path: Path
    settings: tuple[ClamdSetting, ...]

    def values(self, name: str) -> list[ClamdSetting]:
        return [s for s in self.settings if s.name.casefold() == name.casefold()]

    def flag(self, name: str) -> bool:
        found = self.values(name)
        return bool(found) and found[0].value.casefold() in _TRUE

    @property
    def watched(self) -> list[ClamdSetting]:
        """What clamonacc watches by this file (it can also be given a --watch-list)."""
        return self.values("OnAccessIncludePath") + self.values("OnAccessMountPath")

    def where(self, setting: ClamdSetting) -> str:
        return f"{setting.name} {setting.value} ({self.path}:{setting.line})"


@dataclass(frozen=True)
class ClamdConfigProblem:
    """A clamd.conf found on the machine that could not be read: evidence all the same."""

    path: Path
    message: str


def read_clamd_conf(path: Path) -> ClamdConfig:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        remedy = (
            " Run as root or as a member of clamd's group, or copy the file somewhere readable."
            if isinstance(error, PermissionError)
            else ""
        )
        raise AdvisorError(str(path), f"cannot be read: {error.strerror}.{remedy}") from None
    return parse_clamd_conf(text, path)


def parse_clamd_conf(text: str, path: Path) -> ClamdConfig:
    settings = []
    for number, raw in enumerate(_LINES.findall(text), start=1):
        where = f"{path}:{number}"
        if len(raw) > LINE_LIMIT:
            raise AdvisorError(where, f"is longer than the {LINE_LIMIT} characters clamd reads")
        line = raw.lstrip(" \t")
        if len(line) <= 2 or line.startswith("#"):
            continue
        settings.append(_setting(line.rstrip("\r\n"), number, where))
    return ClamdConfig(path, tuple(settings))


def _setting(line: str, number: int, where: str) -> ClamdSetting:
    if line.startswith("Example"):
        raise AdvisorError(
            where, "still has the 'Example' line: clamd refuses to start until it is removed"
        )
    name = re.split(r"[ \t]", line, maxsplit=1)[0]
    value = line[len(name) :].strip(" \t")
    if not value:
        raise AdvisorError(where, f"option {name} has no value")
    if value.startswith('"'):
        closing = value.rfind('"')
        if closing == 0:
            raise AdvisorError(where, f"the value of {name} opens a quote it never closes")
        value = value[1:closing]
        if not value:
            raise AdvisorError(where, f"the value of {name} is an empty quoted string")
    if name.casefold() == "excludepath":
        _compiled(value, where)
    return ClamdSetting(name, value, number)


def _compiled(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise AdvisorError(where, f"ExcludePath must be a regular expression: {error}") from None


def configs_in_use(processes: Sequence[RunningProcess]) -> list[Path]:
    """The files running clamd and clamonacc were started with (-c / --config-file), then
    the distributions' default locations that exist, without repeats."""
    given = [
        Path(value)
        for process in processes
        if process.name in ("clamd", "clamonacc")
        for value in _config_options(process.cmdline)
    ]
    found = [*given, *(path for path in DEFAULT_LOCATIONS if path.is_file())]
    return list(dict.fromkeys(found))


def _config_options(cmdline: Sequence[str]) -> list[str]:
    values = []
    for index, word in enumerate(cmdline):
        if word.startswith("--config-file="):
            values.append(word.partition("=")[2])
        elif word in ("-c", "--config-file") and index + 1 < len(cmdline):
            values.append(cmdline[index + 1])
    return values


def clamd_coverage(
    config: ClamdConfig,
    recommendation: Recommendation,
    *,
    clamonacc_running: bool,
    account: AgentAccount | None,
) -> Coverage:
    on_demand = _on_demand(config, recommendation)
    if not clamonacc_running and not config.watched:
        return Coverage(
            CoverageState.INACTIVE,
            f"On-access scanning is off: clamonacc is not running and {config.path} sets no "
            f"OnAccessIncludePath or OnAccessMountPath.{on_demand}",
        )
    by_user = _user_exclusion(config, account)
    if by_user is not None:
        return Coverage(
            CoverageState.SET, f"{by_user} skips every file the agent's user opens.{on_demand}"
        )
    if recommendation.target is Target.PROCESS:
        who = user_exclusion(account, "with the agent's user")
        return Coverage(
            CoverageState.NOT_SET,
            f"ClamAV cannot exclude a program, only a user: {who} would skip every file the "
            "agent's user opens.",
        )
    path = PurePosixPath(recommendation.path)
    if config.watched and not any(_overlaps(path, s.value) for s in config.watched):
        return Coverage(
            CoverageState.NOT_WATCHED,
            f"Outside every OnAccessIncludePath and OnAccessMountPath of {config.path}.{on_demand}",
        )
    for setting in config.values("OnAccessExcludePath"):
        if _within(path, setting.value):
            return Coverage(CoverageState.SET, f"{config.where(setting)}.{on_demand}")
    return Coverage(
        CoverageState.NOT_SET,
        f"On-access scanning watches it and no OnAccessExcludePath covers it.{on_demand}",
    )


def _on_demand(config: ClamdConfig, recommendation: Recommendation) -> str:
    """A sentence on clamd's own scans, which only ExcludePath governs (folders only)."""
    if recommendation.target is not Target.FOLDER:
        return ""
    inside = f"{PurePosixPath(recommendation.path)}/{_CHILD}"
    for setting in config.values("ExcludePath"):
        if _compiled(setting.value, f"{config.path}:{setting.line}").search(inside):
            return f" clamd's own scans skip it too: {config.where(setting)}."
    return " clamd's own scans (clamdscan) do not skip it: no ExcludePath matches."


def _user_exclusion(config: ClamdConfig, account: AgentAccount | None) -> str | None:
    if account is None:
        return None
    for setting in config.values("OnAccessExcludeUname"):
        if account.name is not None and setting.value == account.name:
            return config.where(setting)
    for setting in config.values("OnAccessExcludeUID"):
        if setting.value.strip() == str(account.uid):
            return config.where(setting)
    if account.uid == 0 and config.flag("OnAccessExcludeRootUID"):
        return config.where(config.values("OnAccessExcludeRootUID")[0])
    return None


def _within(path: PurePosixPath, folder: str) -> bool:
    base = PurePosixPath(folder)
    return base.is_absolute() and path.is_relative_to(base)


def _overlaps(path: PurePosixPath, watched: str) -> bool:
    """A watched tree that holds the folder, or lies inside it, sees some of its files."""
    base = PurePosixPath(watched)
    return base.is_absolute() and (path.is_relative_to(base) or base.is_relative_to(path))
