"""scriptstate.json: the durable record of one ticket's life.

The first six fields keep Tentacle's names and meanings (ScriptState.cs) so existing tooling can
read the file. The rest are ours: what recovery needs after an agent restart (who the script
was for, which mutex it held, which process to re-adopt) and what the quarantine keeps.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tentacle_manager.agent.workspace.atomic import atomic_write
from tentacle_manager.contracts import (
    ExitCode,
    ProcessState,
    ScriptIsolationLevel,
    TimeSpan,
    utc_now,
)

STATE_FILE = "scriptstate.json"


class StateFileError(Exception):
    """A state file that cannot be read; names the file and what is wrong with it."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(f"{path}: {reason}")


class TrackedProcess(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pid: int = Field(alias="Pid")
    create_time: float = Field(alias="CreateTime")


class ScriptState(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=lambda n: "".join(p.capitalize() for p in n.split("_")),
    )

    created: datetime
    started: datetime | None = None
    completed: datetime | None = None
    state: ProcessState = ProcessState.PENDING
    exit_code: int | None = None
    ran_to_completion: bool | None = None

    ticket: str
    task_id: str = ""
    isolation: ScriptIsolationLevel = ScriptIsolationLevel.FULL_ISOLATION
    mutex_name: str = ""
    mutex_timeout: TimeSpan = timedelta(0)
    tracking_id: str = ""
    cancel_requested: bool = False
    process: TrackedProcess | None = None
    quarantined: list[TrackedProcess] = Field(default_factory=list)

    @property
    def is_complete(self) -> bool:
        return self.state is ProcessState.COMPLETE

    def mark_started(self) -> None:
        self.started = utc_now()
        self.state = ProcessState.RUNNING

    def mark_complete(self, exit_code: int, ran_to_completion: bool = True) -> None:
        self.completed = utc_now()
        self.exit_code = exit_code
        self.ran_to_completion = ran_to_completion
        self.state = ProcessState.COMPLETE

    @property
    def reported_exit_code(self) -> int:
        if self.state is not ProcessState.COMPLETE:
            return ExitCode.RUNNING
        return ExitCode.UNKNOWN_RESULT if self.exit_code is None else self.exit_code


class StateStore:
    """Loads and atomically saves one workspace's state file."""

    def __init__(self, directory: Path):
        self.path = directory / STATE_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> ScriptState:
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise StateFileError(self.path, f"cannot be read ({error.strerror})") from None
        try:
            return ScriptState.model_validate_json(raw)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "(document)"
            raise StateFileError(self.path, f"field {field}: {first['msg']}") from None

    def save(self, state: ScriptState) -> None:
        data = state.model_dump(mode="json", by_alias=True)
        atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode())
