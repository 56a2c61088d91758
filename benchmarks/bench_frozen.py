"""The frozen build against the source it was built from.

1. Start-up: the time from starting `tentacle-manager --measure-lag 0.001` (offscreen, on an
   empty machine) until it prints its lag line, which it does once the window is shown and has
   started; frozen (dist/tentacle-manager/) against `python -m tentacle_manager.gui`, alternated,
   after one warm-up run each. Target: median <= 2x the source median.
2. Size of the frozen folder. Target: <= 120 MB. The .deb's size is noted.

The folder is built with `scripts/build-frozen --no-deb` when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Report, main, median, ms, summary

NAME = "frozen"
ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "dist" / "tentacle-manager"
START_TARGET = 2.0
SIZE_TARGET_MB = 120
MEGABYTE = 2**20


async def time_to_window(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
    shown = time.perf_counter() - started
    await process.stdout.read()
    if await process.wait() != 0 or not line:
        raise RuntimeError(f"{command[0]} exited {process.returncode} (printed {line!r})")
    return shown


def folder_size(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*") if not path.is_dir())


def build_if_missing(report: Report) -> None:
    if (FOLDER / "tentacle-manager").is_file():
        return
    report.note("dist/tentacle-manager/ is missing: building it (scripts/build-frozen --no-deb)")
    started = time.perf_counter()
    subprocess.run([str(ROOT / "scripts" / "build-frozen"), "--no-deb"], check=True)
    report.info["build_seconds"] = round(time.perf_counter() - started, 1)


async def measure(report: Report, args: argparse.Namespace) -> None:
    build_if_missing(report)
    rounds = 3 if args.quick else 7
    arguments = ["--measure-lag", "0.001"]
    commands = {
        "source": [sys.executable, "-m", "tentacle_manager.gui", *arguments],
        "frozen": [str(FOLDER / "tentacle-manager"), *arguments],
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(prefix="tentacle-bench-frozen-") as machine:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            "QT_QPA_PLATFORM": "offscreen",
            "TentacleMachineConfigurationHomeDirectory": machine,
            "TENTACLE_SECRET_STORE": "file",
        }
        for command in commands.values():
            await time_to_window(command, env)  # warm-up: file caches, font cache
        for _ in range(rounds):
            for name, command in commands.items():
                timings[name].append(await time_to_window(command, env))
    source, frozen = median(timings["source"]), median(timings["frozen"])
    ratio = frozen / source
    report.info["start"] = {name: summary(values) for name, values in timings.items()}
    report.check(
        "start",
        f"frozen window up in {ms(frozen)} vs {ms(source)} from source (median of {rounds}), "
        f"ratio {ratio:.2f}x",
        ratio <= START_TARGET,
        f"<= {START_TARGET:g}x",
        frozen_ms=frozen * 1e3,
        source_ms=source * 1e3,
        ratio=ratio,
    )
    size = folder_size(FOLDER)
    report.check(
        "size",
        f"dist/tentacle-manager/ holds {size / MEGABYTE:.1f} MB",
        size <= SIZE_TARGET_MB * MEGABYTE,
        f"<= {SIZE_TARGET_MB} MB",
        bytes=size,
    )
    for deb in sorted(FOLDER.parent.glob("tentacle-manager_*.deb")):
        report.note(f"{deb.name}: {deb.stat().st_size / MEGABYTE:.1f} MB")


if __name__ == "__main__":
    sys.exit(main(NAME, measure, __doc__.splitlines()[0]))
