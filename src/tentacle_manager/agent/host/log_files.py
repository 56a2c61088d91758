"""The agent's log file: Tentacle's line format and daily rolling archives.

The manager's log viewer reads this format, and so do the admins who already know Tentacle's
`OctopusTentacle.txt`: `2024-05-01 10:00:00.1234  12345      1  INFO  message`, local time,
a four-digit fraction, pid and thread right-aligned to five. Each day the file becomes
`OctopusTentacle.0.txt`, older archives move up by one, and only seven are kept.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime
from pathlib import Path

LOG_FILE_NAME = "OctopusTentacle.txt"
ARCHIVES_KEPT = 7
TRACE = 5

_LEVEL_NAMES = {TRACE: "TRACE", logging.WARNING: "WARN", logging.CRITICAL: "FATAL"}


class TentacleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created)
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 100:04d}"
        level = _LEVEL_NAMES.get(record.levelno, record.levelname)
        thread = record.thread % 100000 if record.thread else 0
        line = f"{stamp}  {record.process:>5}  {thread:>5} {level:>5}  {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class DailyRollingFile(logging.FileHandler):
    """Rolls to numbered archives at the first record of a new local day."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / LOG_FILE_NAME
        super().__init__(self._path, encoding="utf-8")
        self._day = _day_of(self._path)
        self._rolling = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        today = date.fromtimestamp(record.created)
        if today != self._day:
            with self._rolling:
                if today != self._day:
                    self._roll()
                    self._day = today
        super().emit(record)

    def _roll(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        archive = self._path.with_name
        archive(f"OctopusTentacle.{ARCHIVES_KEPT - 1}.txt").unlink(missing_ok=True)
        for number in range(ARCHIVES_KEPT - 2, -1, -1):
            older = archive(f"OctopusTentacle.{number}.txt")
            if older.exists():
                older.rename(archive(f"OctopusTentacle.{number + 1}.txt"))
        if self._path.exists():
            self._path.rename(archive("OctopusTentacle.0.txt"))


def _day_of(path: Path) -> date:
    try:
        return date.fromtimestamp(path.stat().st_mtime)
    except FileNotFoundError:
        return date.today()


def configure_logging(logs: Path | None, level: int, console: bool = True) -> None:
    """Send the package's records to the log file and, for a foreground agent, the console."""
    logging.addLevelName(TRACE, "TRACE")
    package = logging.getLogger("tentacle_manager")
    package.setLevel(level)
    for handler in list(package.handlers):
        package.removeHandler(handler)
        handler.close()
    if logs is not None:
        file = DailyRollingFile(logs)
        file.setFormatter(TentacleFormatter())
        package.addHandler(file)
    if console:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(stream)
    package.propagate = False


def level_from_environment(value: str | None, default: int = logging.INFO) -> int:
    """OCTOPUS__TENTACLE__LOGLEVEL, with Tentacle's exact, case-sensitive level names."""
    levels = {
        "Trace": TRACE,
        "Debug": logging.DEBUG,
        "Info": logging.INFO,
        "Warn": logging.WARNING,
        "Error": logging.ERROR,
        "Fatal": logging.CRITICAL,
    }
    return levels.get(value or "", default)
