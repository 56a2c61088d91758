"""How late the event loop wakes a 10 ms sleeper: the time it spent blocked. Invariant 6 says
never more than 50 ms; `tentacle-manager --measure-lag SECONDS` reports it for support."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

TICK = 0.01


@dataclass(frozen=True)
class LagFigures:
    samples: int
    worst: float  # seconds
    p99: float

    def __str__(self) -> str:
        return (
            f"event-loop lag over {self.samples} ticks: max {self.worst * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms"
        )


class LoopLagProbe:
    def __init__(self) -> None:
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._lags = []
        self._task = asyncio.get_running_loop().create_task(self._measure())

    async def stop(self) -> LagFigures:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        ordered = sorted(self._lags) or [0.0]
        rank = max(0, math.ceil(0.99 * len(ordered)) - 1)
        return LagFigures(len(self._lags), ordered[-1], ordered[rank])

    async def _measure(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            self._lags.append(max(0.0, time.monotonic() - before - TICK))
