"""How much security software slows the agent's own work: a canary workload timed in
`<home>/Work` against a control folder outside it.

The workload is what deployments do all day: write a small script, make it executable, run
it, delete it. On-access scanners act at each of those steps, so each is timed on its own.
Every script differs (its number and a random token), so a scanner cannot reuse a verdict it
cached by hash. The two folders take turns in batches, and which goes first alternates, so a
machine that speeds up or slows down during the run affects both alike.

The ratio is Work's time over the control's. About 1: Work is treated like any other folder,
either because nothing scans or because both are scanned (the time per script tells which).
Well below 1: Work is spared while the control is scanned, as after a working exclusion. Well
above 1: something scans Work harder than the rest. The control is made in the system's temp
folder unless told otherwise; when that is another filesystem (a tmpfs, say), its speed is in
the ratio too, and `same_filesystem` says so.

The blocking part runs in one executor call. Cancelling the awaiting task sets a flag the
worker checks after every script; the worker then removes both canary folders and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.instances.home import HomeLayout

DEFAULT_SCRIPTS = 400  # per folder: about a second in all where nothing scans
MAX_SCRIPTS = 10_000
BATCH = 20
SLOWER = 1.25  # ratios beyond these are more than the noise of a quiet machine
FASTER = 0.8
WORK_PREFIX = ".av-canary-"  # a dot: no ticket name starts with one, so the agent ignores it
CONTROL_PREFIX = "tentacle-av-canary-"


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds spent in each step, summed over the scripts."""

    write: float = 0.0
    chmod: float = 0.0
    execute: float = 0.0
    delete: float = 0.0

    @property
    def total(self) -> float:
        return self.write + self.chmod + self.execute + self.delete

    def __add__(self, other: PhaseTimes) -> PhaseTimes:
        return PhaseTimes(
            self.write + other.write,
            self.chmod + other.chmod,
            self.execute + other.execute,
            self.delete + other.delete,
        )


@dataclass(frozen=True)
class FolderRun:
    folder: Path
    scripts: int
    times: PhaseTimes = field(default_factory=PhaseTimes)
    failures: int = 0
    first_failure: str | None = None  # a blocked write or exec is evidence in itself

    @property
    def per_script_ms(self) -> float:
        return 1000 * self.times.total / self.scripts if self.scripts else 0.0


@dataclass(frozen=True)
class CanaryResult:
    work: FolderRun
    control: FolderRun
    same_filesystem: bool

    @property
    def ratio(self) -> float:
        return self.work.times.total / self.control.times.total

    def summary(self) -> str:
        work, control = self.work.per_script_ms, self.control.per_script_ms
        times = f"{work:.1f} ms a script in Work, {control:.1f} ms in the control folder"
        if self.ratio >= SLOWER:
            verdict = (
                f"Work is {self.ratio:.2f} times slower than the control folder ({times}): "
                "something scans it harder than other folders. Exclude it."
            )
        elif self.ratio <= FASTER:
            verdict = (
                f"Work is faster than the control folder ({self.ratio:.2f}; {times}): it looks "
                "excluded while other folders are scanned."
            )
        else:
            verdict = (
                f"Work costs about the same as the control folder ({self.ratio:.2f}; {times}): "
                "either nothing scans them, or both are scanned alike."
            )
        extra = [
            f"{run.failures} of {run.scripts} canary scripts failed in {run.folder.parent}: "
            f"{run.first_failure}."
            for run in (self.work, self.control)
            if run.failures
        ]
        if not self.same_filesystem:
            extra.append(
                "The control folder is on another filesystem, whose speed is in the ratio too."
            )
        return " ".join([verdict, *extra])

    def as_dict(self) -> dict[str, Any]:
        return {
            "Ratio": round(self.ratio, 3),
            "Summary": self.summary(),
            "SameFilesystem": self.same_filesystem,
            "Work": _run_dict(self.work),
            "Control": _run_dict(self.control),
        }


def _run_dict(run: FolderRun) -> dict[str, Any]:
    return {
        "Folder": str(run.folder.parent),
        "Scripts": run.scripts,
        "Failures": run.failures,
        "FirstFailure": run.first_failure,
        "Seconds": {
            "Write": round(run.times.write, 4),
            "Chmod": round(run.times.chmod, 4),
            "Execute": round(run.times.execute, 4),
            "Delete": round(run.times.delete, 4),
            "Total": round(run.times.total, 4),
        },
    }


def check_scripts(scripts: int) -> int:
    if not 1 <= scripts <= MAX_SCRIPTS:
        raise AdvisorError("scripts", f"must be between 1 and {MAX_SCRIPTS}, not {scripts}")
    return scripts


async def measure_interference(
    home: Path,
    *,
    scripts: int = DEFAULT_SCRIPTS,
    control_parent: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CanaryResult:
    """Run `scripts` canary scripts in `<home>/Work` and as many in a folder made under
    `control_parent` (the system's temp folder by default). `on_progress(done, total)` is
    called on the loop after each batch. Raises AdvisorError for bad input."""
    check_scripts(scripts)
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def report(done: int) -> None:
        if on_progress is not None:
            loop.call_soon_threadsafe(on_progress, done, scripts)

    try:
        return await loop.run_in_executor(
            None, _measure, Path(home), scripts, control_parent, stop, report
        )
    finally:
        stop.set()  # after a cancel the worker stops at its next script


def _measure(
    home: Path,
    scripts: int,
    control_parent: Path | None,
    stop: threading.Event,
    report: Callable[[int], None],
) -> CanaryResult:
    work_root = HomeLayout(home).work
    if not work_root.is_dir():
        raise AdvisorError(
            "home", f"{work_root} is not a folder: give a Tentacle home that has a Work folder"
        )
    folders = [_made(work_root, WORK_PREFIX, "home")]
    try:
        folders.append(_made(control_parent, CONTROL_PREFIX, "control folder"))
        if folders[1].resolve().is_relative_to(work_root.resolve()):
            raise AdvisorError("control folder", f"must be outside {work_root}")
        runs = {folder: FolderRun(folder, 0) for folder in folders}
        token = secrets.token_hex(8)
        for first in range(0, scripts, BATCH):
            count = min(BATCH, scripts - first)
            order = folders if (first // BATCH) % 2 == 0 else folders[::-1]
            for folder in order:
                runs[folder] = _batch(runs[folder], range(first, first + count), token, stop)
            if stop.is_set():
                raise asyncio.CancelledError
            report(first + count)
        same = os.stat(folders[0]).st_dev == os.stat(folders[1]).st_dev
        return CanaryResult(runs[folders[0]], runs[folders[1]], same)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _made(parent: Path | None, prefix: str, field_name: str) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        where = parent if parent is not None else tempfile.gettempdir()
        raise AdvisorError(
            field_name, f"cannot make a folder in {where}: {error.strerror}"
        ) from None


def _batch(run: FolderRun, numbers: range, token: str, stop: threading.Event) -> FolderRun:
    times = run.times
    failures, first_failure = run.failures, run.first_failure
    for number in numbers:
        if stop.is_set():
            break
        took, failure = _one_script(run.folder / _script_name(number), number, token)
        times += took
        if failure is not None:
            failures += 1
            first_failure = first_failure or failure
    return replace(
        run,
        scripts=run.scripts + len(numbers),
        times=times,
        failures=failures,
        first_failure=first_failure,
    )


def _one_script(path: Path, number: int, token: str) -> tuple[PhaseTimes, str | None]:
    """The four steps' durations, and what went wrong if a step failed (the rest still run,
    so a scanner that quarantines the file shows as a failed run, not a crash)."""
    marks = [time.perf_counter()]
    failure = None
    try:
        path.write_bytes(_script_body(number, token))
    except OSError as error:
        failure = f"writing {path.name}: {error.strerror}"
    marks.append(time.perf_counter())
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    marks.append(time.perf_counter())
    try:
        code = subprocess.run(
            _command(path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        ).returncode
        if code != 0 and failure is None:
            failure = f"running {path.name}: exit code {code}"
    except OSError as error:
        failure = failure or f"running {path.name}: {error.strerror}"
    marks.append(time.perf_counter())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    marks.append(time.perf_counter())
    return PhaseTimes(*(later - earlier for earlier, later in pairwise(marks))), failure


def _script_name(number: int) -> str:
    return f"canary-{number:05d}" + (".cmd" if sys.platform == "win32" else ".sh")


def _script_body(number: int, token: str) -> bytes:
    if sys.platform == "win32":
        return f"@rem Tentacle anti-virus canary {number} {token}\r\n@exit /b 0\r\n".encode()
    return f"#!/bin/sh\n# Tentacle anti-virus canary {number} {token}\nexit 0\n".encode()


def _command(path: Path) -> list[str]:
    if sys.platform == "win32":
        return [os.environ.get("COMSPEC", "cmd.exe"), "/d", "/c", str(path)]
    return [str(path)]
