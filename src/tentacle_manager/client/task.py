"""A task: ordered steps, each one script run on one or more named agents at the same time.

A task names its agents and nothing more; how to reach them is kept apart (the task file's
`AgentEndpoint`, or whatever clients a caller hands the runner), so one task runs against any
set of agents, in process or across the network.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from tentacle_manager.contracts import (
    ProblemsError,
    ScriptFile,
    ScriptIsolationLevel,
    ScriptTicket,
    StartScriptCommand,
    parse_timespan,
)

AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_SECONDS = dt.timedelta.max.total_seconds()
ISOLATION_WORDS = {
    "full": ScriptIsolationLevel.FULL_ISOLATION,
    "none": ScriptIsolationLevel.NO_ISOLATION,
}


class TaskError(ProblemsError):
    """A task that cannot run; fields are paths such as `steps[2].agents[0]`."""


def _isolation(value: Any) -> ScriptIsolationLevel:
    if isinstance(value, ScriptIsolationLevel):
        return value
    if isinstance(value, str) and value in ISOLATION_WORDS:
        return ISOLATION_WORDS[value]
    raise ValueError(f"must be 'full' or 'none' (got {value!r})")


def _duration(value: Any) -> dt.timedelta:
    """A TimeSpan string, seconds, or a TOML time of day read as hours:minutes:seconds."""
    if isinstance(value, dt.time):
        return dt.timedelta(
            hours=value.hour,
            minutes=value.minute,
            seconds=value.second,
            microseconds=value.microsecond,
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= MAX_SECONDS:  # also refuses NaN
            raise ValueError(f"must be a number of seconds from 0 to {MAX_SECONDS:.0f}")
        return dt.timedelta(seconds=value)
    if isinstance(value, str | dt.timedelta):
        try:
            return parse_timespan(value)
        except OverflowError:
            raise ValueError(f"{value!r} is longer than a duration can be") from None
    raise ValueError("must be a TimeSpan such as '00:05:00' or a number of seconds")


class Step(BaseModel):
    """One script; it runs on every agent in `agents` at once. A zero `mutex_timeout` waits for
    the mutex without limit, as Tentacle's TimeSpan.Zero does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    agents: tuple[str, ...]
    script: str
    files: tuple[ScriptFile, ...] = ()
    isolation: Annotated[ScriptIsolationLevel, BeforeValidator(_isolation)] = (
        ScriptIsolationLevel.FULL_ISOLATION
    )
    mutex: str | None = Field(None, min_length=1, max_length=200)
    mutex_timeout: Annotated[dt.timedelta, BeforeValidator(_duration)] = dt.timedelta(0)

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: tuple[str, ...]) -> tuple[str, ...]:
        if not agents:
            raise ValueError("must name at least one agent")
        for name in agents:
            if not AGENT_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an agent name: 1-100 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit"
                )
            if agents.count(name) > 1:
                raise ValueError(f"names agent {name!r} more than once")
        return agents

    def start_command(self, ticket: ScriptTicket, task_id: str) -> StartScriptCommand:
        return StartScriptCommand(
            script_ticket=ticket,
            task_id=task_id,
            script_body=self.script,
            files=list(self.files),
            isolation=self.isolation,
            isolation_mutex_name=self.mutex,
            script_isolation_mutex_timeout=self.mutex_timeout,
        )


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    steps: tuple[Step, ...]

    @field_validator("steps")
    @classmethod
    def _distinct_step_names(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        """Step names end up in the task ids that mutex inspectors show; they must tell apart.
        (Pydantic runs this only once every step is valid, and so does a `min_length`, which is
        why the emptiness check is here too rather than a second, misleading error.)"""
        if not steps:
            raise ValueError("must hold at least one step")
        seen: dict[str, int] = {}
        for index, step in enumerate(steps):
            if step.name in seen:
                raise ValueError(
                    f"steps[{index}] and steps[{seen[step.name]}] are both called {step.name!r}"
                )
            seen[step.name] = index
        return steps

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Task:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise TaskError(problems_of(error)) from None

    def script_task_id(self, step: Step) -> str:
        """What agents show as the task of a step's scripts, e.g. in the mutex inspector."""
        return f"{self.name}/{step.name}"


def field_path(location: tuple[int | str, ...]) -> str:
    """('steps', 2, 'agents', 0) -> 'steps[2].agents[0]'."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(task)"


def problems_of(error: ValidationError) -> dict[str, str]:
    """Each failing field's path mapped to the rule it broke, in words for people."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        if item["type"] == "missing":
            rule = "is required"
        elif item["type"] == "extra_forbidden":
            rule = "is not a known field"
        else:
            rule = item["msg"].removeprefix("Value error, ")
        problems.setdefault(field_path(item["loc"]), rule)
    return problems
