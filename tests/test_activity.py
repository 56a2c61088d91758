"""The activity column: real processes, sampled twice, classified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from tentacle_manager.agent.process.sampling import sample
from tentacle_manager.agent.process.tree import ScriptProcesses
from tentacle_manager.diagnostics.activity import Activity, ActivitySample, classify

BUSY = [sys.executable, "-c", "while True: pass"]
ASLEEP = ["sleep", "30"]


@pytest.fixture
def start() -> Iterator:
    started: list[subprocess.Popen] = []

    def run(argv: list[str]) -> ScriptProcesses:
        process = subprocess.Popen(argv, start_new_session=True)
        started.append(process)
        time.sleep(0.2)
        return ScriptProcesses(process.pid, psutil.Process(process.pid).create_time(), "none")

    yield run
    for process in started:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def two_samples(tree: ScriptProcesses, output: tuple[int, int] = (0, 0)) -> tuple:
    first = ActivitySample(time.monotonic(), output[0], tuple(sample(tree)))
    time.sleep(0.5)
    second = ActivitySample(time.monotonic(), output[1], tuple(sample(tree)))
    return first, second


def test_a_busy_silent_script_is_progressing(start) -> None:
    verdict = classify(*two_samples(start(BUSY)))
    assert verdict.activity is Activity.PROGRESSING and "CPU" in verdict.reason


def test_a_sleeping_script_is_waiting_not_frozen(start) -> None:
    verdict = classify(*two_samples(start(ASLEEP)))
    assert verdict.activity is Activity.WAITING


def test_new_output_is_progress_whatever_the_processes_do(start) -> None:
    verdict = classify(*two_samples(start(ASLEEP), output=(10, 14)))
    assert verdict == verdict.__class__(Activity.PROGRESSING, "4 new output line(s)")


def test_a_stopped_process_makes_the_script_frozen_and_names_it(start) -> None:
    tree = start(ASLEEP)
    os.kill(tree.entry_pid, signal.SIGSTOP)
    time.sleep(0.1)
    verdict = classify(*two_samples(tree))
    assert verdict.activity is Activity.FROZEN
    assert f"sleep (pid {tree.entry_pid}) is stopped" in verdict.reason


def test_a_script_with_no_process_left_has_ended(start) -> None:
    tree = start(ASLEEP)
    before = ActivitySample(time.monotonic(), 0, tuple(sample(tree)))
    os.killpg(tree.entry_pid, signal.SIGKILL)
    time.sleep(0.2)
    after = ActivitySample(time.monotonic(), 0, tuple(sample(tree)))
    assert classify(before, after).activity is Activity.ENDED
