"""The canary workload, run for real: scripts written, made executable, run and deleted in a
temporary home's Work folder and in a control folder, timed, cancelled, and cleaned up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tentacle_manager.diagnostics.antivirus import (
    AdvisorError,
    CanaryResult,
    FolderRun,
    PhaseTimes,
    measure_interference,
)
from tentacle_manager.diagnostics.antivirus.canary import MAX_SCRIPTS


def home_with_work(tmp_path: Path) -> Path:
    home = tmp_path / "home with space's"
    (home / "Work").mkdir(parents=True)
    (tmp_path / "control").mkdir()
    return home


async def test_the_canary_runs_for_real_and_gives_a_positive_ratio(tmp_path: Path) -> None:
    home = home_with_work(tmp_path)
    progress: list[tuple[int, int]] = []
    started = time.monotonic()
    result = await measure_interference(
        home,
        scripts=50,
        control_parent=tmp_path / "control",
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert time.monotonic() - started < 5
    assert result.ratio > 0
    for run in (result.work, result.control):
        assert (run.scripts, run.failures, run.first_failure) == (50, 0, None)
        assert min(run.times.write, run.times.chmod, run.times.execute, run.times.delete) > 0
        assert run.times.execute > run.times.chmod  # a process start costs more than a chmod
    assert result.work.folder.parent == home / "Work"
    assert result.control.folder.parent == tmp_path / "control"
    assert result.same_filesystem
    assert progress == [(20, 50), (40, 50), (50, 50)]
    assert list((home / "Work").iterdir()) == [] and list((tmp_path / "control").iterdir()) == []
    shown = result.as_dict()
    assert shown["Ratio"] == round(result.ratio, 3) and shown["Work"]["Scripts"] == 50
    assert shown["Summary"].startswith("Work ")


async def test_cancelling_stops_the_worker_and_removes_its_folders(tmp_path: Path) -> None:
    home = home_with_work(tmp_path)
    first_batch = asyncio.Event()
    task = asyncio.create_task(
        measure_interference(
            home,
            scripts=MAX_SCRIPTS,
            control_parent=tmp_path / "control",
            on_progress=lambda done, total: first_batch.set(),
        )
    )
    await asyncio.wait_for(first_batch.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 3
    while any((home / "Work").iterdir()) or any((tmp_path / "control").iterdir()):
        assert time.monotonic() < deadline, "the canary folders were not removed"
        await asyncio.sleep(0.02)


async def test_bad_input_is_refused_with_the_field_and_the_rule(tmp_path: Path) -> None:
    with pytest.raises(AdvisorError) as raised:
        await measure_interference(tmp_path / "nowhere")
    assert str(raised.value) == (
        f"home: {tmp_path / 'nowhere' / 'Work'} is not a folder: give a Tentacle home that has "
        "a Work folder"
    )
    with pytest.raises(AdvisorError, match="scripts: must be between 1 and 10000, not 0"):
        await measure_interference(tmp_path, scripts=0)
    home = home_with_work(tmp_path)
    with pytest.raises(AdvisorError) as raised:
        await measure_interference(home, control_parent=home / "Work")
    assert str(raised.value) == f"control folder: must be outside {home / 'Work'}"
    assert list((home / "Work").iterdir()) == []
    with pytest.raises(AdvisorError, match="control folder: cannot make a folder in"):
        await measure_interference(home, control_parent=tmp_path / "missing")


def result(work: float, control: float, failures: int = 0, same: bool = True) -> CanaryResult:
    def run(folder: str, seconds: float, failed: int) -> FolderRun:
        first = "running canary-00003.sh: Permission denied" if failed else None
        return FolderRun(
            Path(folder) / ".av-canary-x", 100, PhaseTimes(execute=seconds), failed, first
        )

    return CanaryResult(run("/srv/t/Work", work, failures), run("/tmp", control, 0), same)


def test_the_summary_reads_the_ratio_for_a_person() -> None:
    assert result(0.3, 0.1).summary() == (
        "Work is 3.00 times slower than the control folder (3.0 ms a script in Work, 1.0 ms in "
        "the control folder): something scans it harder than other folders. Exclude it."
    )
    assert result(0.1, 0.5).summary() == (
        "Work is faster than the control folder (0.20; 1.0 ms a script in Work, 5.0 ms in the "
        "control folder): it looks excluded while other folders are scanned."
    )
    assert result(0.1, 0.1, failures=100, same=False).summary() == (
        "Work costs about the same as the control folder (1.00; 1.0 ms a script in Work, 1.0 "
        "ms in the control folder): either nothing scans them, or both are scanned alike. 100 "
        "of 100 canary scripts failed in /srv/t/Work: running canary-00003.sh: Permission "
        "denied. The control folder is on another filesystem, whose speed is in the ratio too."
    )
