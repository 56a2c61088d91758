"""The agent process's own pieces: Tentacle's log line format and rolling archives, the
liveness heartbeat, and the log level taken from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from pathlib import Path

import pytest

from tentacle_manager.agent.host import heartbeat
from tentacle_manager.agent.host.log_files import (
    ARCHIVES_KEPT,
    LOG_FILE_NAME,
    TRACE,
    DailyRollingFile,
    TentacleFormatter,
    configure_logging,
    level_from_environment,
)

# Reference behaviour 45: the line format of OctopusTentacle.txt.
TENTACLE_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{4}  [ \d]{5,}  [ \d]{5,} [ A-Z]{5}  "
)


def record(
    message: str, level: int = logging.INFO, created: float | None = None
) -> logging.LogRecord:
    made = logging.LogRecord("tentacle_manager.test", level, __file__, 1, message, None, None)
    if created is not None:
        made.created = created
    return made


def test_lines_follow_tentacles_layout_for_every_level() -> None:
    formatter = TentacleFormatter()
    for level, name in [
        (TRACE, "TRACE"),
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, " INFO"),
        (logging.WARNING, " WARN"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "FATAL"),
    ]:
        line = formatter.format(record("Agent listening on: [::]:10933", level))
        assert TENTACLE_LINE.match(line), line
        assert f"{name}  Agent listening on" in line


def test_the_file_rolls_daily_into_numbered_archives_and_keeps_seven(tmp_path: Path) -> None:
    handler = DailyRollingFile(tmp_path)
    handler.setFormatter(TentacleFormatter())
    today = time.time()
    for days_ago in range(ARCHIVES_KEPT + 3, -1, -1):
        moment = today - days_ago * 86400
        handler.emit(record(f"day -{days_ago}", created=moment))
    handler.close()
    assert (tmp_path / LOG_FILE_NAME).read_text().strip().endswith("day -0")
    assert (tmp_path / "OctopusTentacle.0.txt").read_text().strip().endswith("day -1")
    archives = sorted(p.name for p in tmp_path.glob("OctopusTentacle.*.txt"))
    assert len(archives) == ARCHIVES_KEPT
    assert (
        (tmp_path / f"OctopusTentacle.{ARCHIVES_KEPT - 1}.txt")
        .read_text()
        .strip()
        .endswith(f"day -{ARCHIVES_KEPT}")
    )


def test_configured_logging_writes_the_file_and_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path, logging.INFO)
    try:
        logging.getLogger("tentacle_manager.agent").info("hello file")
        logging.getLogger("tentacle_manager.agent").debug("too detailed")
    finally:
        configure_logging(None, logging.WARNING, console=False)
    text = (tmp_path / LOG_FILE_NAME).read_text()
    assert "hello file" in text and "too detailed" not in text
    assert all(TENTACLE_LINE.match(line) for line in text.splitlines())
    assert "hello file" in capsys.readouterr().err


def test_log_level_names_are_tentacles_and_case_sensitive() -> None:
    """Reference behaviour 44: `Trace` raises the level, `trace` is ignored."""
    assert level_from_environment("Trace") == TRACE
    assert level_from_environment("Debug") == logging.DEBUG
    assert level_from_environment("trace") == logging.INFO
    assert level_from_environment(None) == logging.INFO


async def test_the_heartbeat_is_touched_and_its_age_reported(tmp_path: Path) -> None:
    assert heartbeat.age_seconds(tmp_path) is None
    beating = asyncio.get_running_loop().create_task(heartbeat.beat(tmp_path, interval=0.05))
    await asyncio.sleep(0.2)
    beating.cancel()
    age = heartbeat.age_seconds(tmp_path)
    assert age is not None and age < 5
    old = time.time() - 120
    os.utime(tmp_path / heartbeat.HEARTBEAT_FILE, (old, old))
    assert heartbeat.age_seconds(tmp_path) >= 119
