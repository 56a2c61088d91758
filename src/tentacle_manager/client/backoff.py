"""The growing pause between two questions to an agent while a script runs.

Tentacle's server polls at 300 ms x 1.15^n up to 5 s (DefaultScriptObserverBackoffStrategy):
it watches hundreds of agents over the network and a status call is a Halibut round trip, so it
trades latency for load. Our callers are a person at the manager or the CLI watching output, and
a status read costs the agent the same on a huge log as on a small one (bench_status), so the
default starts at 50 ms (a short script's result shows at once) and stops growing at 1 s (output
of a long script never lags more than a second). The same schedule paces retries while the agent
is unreachable.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackoffSchedule(BaseModel):
    """First pause, growth factor per pause, and the pause it never exceeds (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(0.05, gt=0, le=60)
    factor: float = Field(1.15, ge=1, le=10)
    maximum: float = Field(1.0, gt=0, le=300)

    @model_validator(mode="after")
    def _maximum_not_below_initial(self) -> BackoffSchedule:
        if self.maximum < self.initial:
            raise ValueError(f"maximum ({self.maximum:g} s) must not be below initial")
        return self


class Backoff:
    """Walks a schedule; `reset` starts it over, as Tentacle does when a cancel begins."""

    def __init__(self, schedule: BackoffSchedule) -> None:
        self._schedule = schedule
        self._next = schedule.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * self._schedule.factor, self._schedule.maximum)
        return delay

    def reset(self) -> None:
        self._next = self._schedule.initial
