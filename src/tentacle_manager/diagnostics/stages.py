"""Checks made of stages run in order, each timed and bounded by its own deadline.

A stage that fails stops the check, and every stage after it is reported as skipped, so an
admin sees exactly where the road ends instead of a cascade of follow-on errors. Each result
is handed to the caller the moment it is known (the GUI adds a row, the CLI prints a line),
and the whole check is returned as a report at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StageResult:
    """One stage as it ended: for a failure `detail` says what went wrong in plain words and
    `remedy` what to do; for a pass, what was found."""

    stage: str  # a stable name for programs: "resolve", "connect", "handshake", ...
    title: str  # what was tried, for people
    outcome: Outcome
    seconds: float
    detail: str = ""
    remedy: str | None = None
    facts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "title": self.title,
            "outcome": self.outcome.value,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "remedy": self.remedy,
            "facts": self.facts,
        }


StageListener = Callable[[StageResult], None]


def ignore_stage(result: StageResult) -> None:
    """The listener of a caller that only wants the final report."""


class StageFailure(Exception):
    """A stage found a problem the admin can act on; raised by stage bodies."""

    def __init__(self, detail: str, remedy: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.remedy = remedy


@dataclass(frozen=True)
class Passed:
    detail: str
    facts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotApplicable:
    """The stage has nothing to check here (say, no thumbprint to pin); later stages run."""

    reason: str


@dataclass(frozen=True)
class Stage:
    stage: str
    title: str
    timeout: float
    body: Callable[[], Awaitable[Passed | NotApplicable]]
    # The plain words for running out of time, where they say more than that it took too long.
    timed_out: Callable[[float], StageFailure] | None = None

    def too_slow(self) -> StageFailure:
        if self.timed_out is not None:
            return self.timed_out(self.timeout)
        return StageFailure(f"{self.title} did not finish within {self.timeout:g} s")


@dataclass(frozen=True)
class CheckReport:
    target: str
    stages: tuple[StageResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.outcome is not Outcome.FAILED for result in self.stages)

    @property
    def failure(self) -> StageResult | None:
        return next((r for r in self.stages if r.outcome is Outcome.FAILED), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "passed": self.passed,
            "stages": [result.to_json() for result in self.stages],
        }


async def run_stages(
    target: str, stages: Sequence[Stage], on_stage: StageListener = ignore_stage
) -> CheckReport:
    results: list[StageResult] = []
    failed: StageResult | None = None
    for stage in stages:
        if failed is None:
            result = await _run(stage)
            if result.outcome is Outcome.FAILED:
                failed = result
        else:
            result = StageResult(
                stage.stage,
                stage.title,
                Outcome.SKIPPED,
                0.0,
                f"not tried, because an earlier stage failed ({failed.title})",
            )
        results.append(result)
        on_stage(result)
    return CheckReport(target, tuple(results))


async def _run(stage: Stage) -> StageResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(stage.timeout):  # not wait_for: on 3.11 it can lose a cancel
            done = await stage.body()
    except StageFailure as failure:
        return _failed(stage, started, failure)
    except TimeoutError:
        return _failed(stage, started, stage.too_slow())
    seconds = time.monotonic() - started
    if isinstance(done, NotApplicable):
        return StageResult(stage.stage, stage.title, Outcome.SKIPPED, seconds, done.reason)
    return StageResult(
        stage.stage, stage.title, Outcome.PASSED, seconds, done.detail, None, done.facts
    )


def _failed(stage: Stage, started: float, failure: StageFailure) -> StageResult:
    return StageResult(
        stage.stage,
        stage.title,
        Outcome.FAILED,
        time.monotonic() - started,
        failure.detail,
        failure.remedy,
    )
