"""Request, response, enum and exit-code types shared by the agent and every client.

On the wire the field names are Tentacle's ScriptServiceV2 names (PascalCase aliases, enums as
integers, durations as .NET TimeSpan strings) so that a Halibut-compatible transport can be a
thin adapter. Python code uses the snake_case attribute names. Every model rejects unknown
fields, and `parse` turns validation failures into a `ContractError` that names each field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
)

DEFAULT_MUTEX_NAME = "RunningScript"
TICKET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class ExitCode(IntEnum):
    """Tentacle's reserved exit codes (ScriptExitCodes.cs), same values and meanings."""

    RUNNING = 0
    FATAL = -41
    SHELL_INVOCATION_ERROR = -42
    CANCELED = -43
    TIMEOUT = -44
    UNKNOWN_SCRIPT = -45
    UNKNOWN_RESULT = -46
    POWERSHELL_NEVER_STARTED = -47
    ABANDONED = -48


class ProcessState(IntEnum):
    """The wire order must never change: the integer values go over the wire."""

    PENDING = 0
    RUNNING = 1
    COMPLETE = 2


class ProcessOutputSource(IntEnum):
    STDOUT = 0
    STDERR = 1
    DEBUG = 2


class ScriptIsolationLevel(IntEnum):
    NO_ISOLATION = 0
    FULL_ISOLATION = 1

    @property
    def label(self) -> str:
        """The name Tentacle prints in task logs ("FullIsolation" / "NoIsolation")."""
        return "FullIsolation" if self is ScriptIsolationLevel.FULL_ISOLATION else "NoIsolation"


class ScriptType(IntEnum):
    POWERSHELL = 0
    BASH = 1

    @property
    def wire_name(self) -> str:
        return "PowerShell" if self is ScriptType.POWERSHELL else "Bash"


class Capability(StrEnum):
    SCRIPT_SERVICE_V2 = "IScriptServiceV2"
    ABANDON_SCRIPT = "AbandonScript"
    ABANDON_SCRIPT_V2 = "AbandonScriptV2"


class ProblemsError(ValueError):
    """Bad input; `problems` maps each offending field to the rule it broke."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {rule}" for field, rule in problems.items()))


class ContractError(ProblemsError):
    """A request that breaks the wire contract (fields are wire field paths)."""


# --- durations ---------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


def parse_timespan(value: Any) -> timedelta:
    """Accept a .NET TimeSpan string ("[d.]hh:mm:ss[.fffffff]") or a timedelta; never negative."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("must be a TimeSpan string such as '00:01:30' or '1.02:00:00'")
    match = _TIMESPAN.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a TimeSpan such as '00:01:30' or '1.02:00:00'")
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        raise ValueError(f"{value!r} has hours above 23 or minutes/seconds above 59")
    micro = int((fraction or "0").ljust(7, "0")) // 10
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=micro,
    )


def format_timespan(value: timedelta) -> str:
    total_us = value // timedelta(microseconds=1)
    days, rem = divmod(total_us, 86_400_000_000)
    hours, rem = divmod(rem, 3_600_000_000)
    minutes, rem = divmod(rem, 60_000_000)
    seconds, micro = divmod(rem, 1_000_000)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if days:
        text = f"{days}.{text}"
    if micro:
        text = f"{text}.{micro * 10:07d}"
    return text


TimeSpan = Annotated[
    timedelta, BeforeValidator(parse_timespan), PlainSerializer(format_timespan, return_type=str)
]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return value


class Contract(BaseModel):
    """Base for wire types: PascalCase aliases, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=lambda name: "".join(part.capitalize() for part in name.split("_")),
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# --- tickets -----------------------------------------------------------------------------------


class ScriptTicket(Contract):
    """The client-chosen id of one script run. Equality ignores case, as in Tentacle.

    The wire name of the single field is `TaskId` (Tentacle's own naming); it is not the server
    task id. Only letters, digits, '-' and '_' are allowed because the ticket names a folder.
    """

    task_id: str = Field(alias="TaskId")

    @field_validator("task_id")
    @classmethod
    def _valid(cls, value: str) -> str:
        if not TICKET_PATTERN.match(value):
            raise ValueError(
                f"must be 1-100 characters of letters, digits, '-' or '_' (got {value[:120]!r})"
            )
        return value

    @property
    def key(self) -> str:
        """The case-folded form used for dictionary keys and folder names."""
        return self.task_id.lower()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScriptTicket) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.task_id


def ticket(value: str | ScriptTicket) -> ScriptTicket:
    return value if isinstance(value, ScriptTicket) else ScriptTicket(task_id=value)


# --- requests ----------------------------------------------------------------------------------


class ScriptFile(Contract):
    """An extra file written into the workspace before launch, optionally AES-encrypted."""

    name: str
    contents: bytes = b""
    encryption_password: SecretStr | None = None

    @field_validator("name")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = re.split(r"[\\/]", value)
        if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
            raise ValueError("must be a relative path inside the workspace")
        if any(part == ".." for part in parts):
            raise ValueError("must not contain '..' (it would leave the workspace)")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_serializer("encryption_password", when_used="json")
    def _reveal(self, value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None


class StartScriptCommand(Contract):
    """StartScriptCommandV2: every V1 field plus the client-chosen ticket and the optional wait."""

    script_ticket: ScriptTicket
    task_id: str = ""
    script_body: str = ""
    scripts: dict[ScriptType, str] = Field(default_factory=dict)
    isolation: ScriptIsolationLevel = ScriptIsolationLevel.FULL_ISOLATION
    script_isolation_mutex_timeout: TimeSpan = timedelta(0)
    isolation_mutex_name: str | None = None
    arguments: list[str] = Field(default_factory=list)
    files: list[ScriptFile] = Field(default_factory=list)
    duration_to_wait_for_script_to_finish: TimeSpan | None = None

    @field_validator("scripts", mode="before")
    @classmethod
    def _script_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            names = {t.wire_name: t for t in ScriptType}
            return {names.get(k, k) if isinstance(k, str) else k: v for k, v in value.items()}
        return value

    @field_serializer("scripts")
    def _script_names(self, value: dict[ScriptType, str]) -> dict[str, str]:
        return {kind.wire_name: body for kind, body in value.items()}

    @field_validator("isolation_mutex_name")
    @classmethod
    def _mutex_name(cls, value: str | None) -> str | None:
        if value is not None and not (0 < len(value) <= 200):
            raise ValueError("must be 1-200 characters (or omitted for 'RunningScript')")
        return value

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, value: list[str]) -> list[str]:
        if any("\x00" in arg for arg in value):
            raise ValueError("must not contain NUL characters")
        return value

    @property
    def mutex_name(self) -> str:
        return self.isolation_mutex_name or DEFAULT_MUTEX_NAME

    @property
    def mutex_timeout(self) -> timedelta | None:
        """None means wait without limit (Tentacle treats TimeSpan.Zero that way)."""
        timeout = self.script_isolation_mutex_timeout
        return None if timeout == timedelta(0) else timeout


class ScriptStatusRequest(Contract):
    ticket: ScriptTicket
    last_log_sequence: int = 0


class CancelScriptCommand(Contract):
    ticket: ScriptTicket
    last_log_sequence: int = 0


class AbandonScriptCommand(Contract):
    ticket: ScriptTicket
    last_log_sequence: int = 0


class CompleteScriptCommand(Contract):
    ticket: ScriptTicket


# --- responses ---------------------------------------------------------------------------------


class ProcessOutput(Contract):
    source: ProcessOutputSource
    text: str
    occurred: datetime

    @field_validator("occurred")
    @classmethod
    def _has_offset(cls, value: datetime) -> datetime:
        return _aware(value)


class ScriptStatusResponse(Contract):
    ticket: ScriptTicket
    state: ProcessState
    exit_code: int
    logs: list[ProcessOutput] = Field(default_factory=list)
    next_log_sequence: int = 0


class CapabilitiesResponse(Contract):
    supported_capabilities: list[str]


# --- inspection (admin verbs used by the manager) ----------------------------------------------


class ScriptPhase(StrEnum):
    """Finer than ProcessState: what an admin needs to see in the scripts panel."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETE = "complete"
    ABANDONED = "abandoned"


class ScriptSummary(Contract):
    ticket: ScriptTicket
    task_id: str
    phase: ScriptPhase
    state: ProcessState
    exit_code: int
    mutex_name: str
    isolation: ScriptIsolationLevel
    created: datetime
    started: datetime | None = None
    completed: datetime | None = None
    pid: int | None = None
    next_log_sequence: int = 0  # for a live script: how much output it has so far
    last_line: str = ""  # for a live script: its latest line of output (not the agent's own)


class MutexParty(Contract):
    """A holder or a waiter of one isolation mutex."""

    ticket: ScriptTicket
    task_id: str
    level: ScriptIsolationLevel
    since: datetime


class MutexState(Contract):
    name: str
    holders: list[MutexParty]
    waiters: list[MutexParty]


class MutexEventKind(StrEnum):
    QUEUED = "queued"
    ACQUIRED = "acquired"
    RELEASED = "released"
    LEFT_QUEUE = "left-queue"


class MutexEvent(Contract):
    kind: MutexEventKind
    name: str
    party: MutexParty
    at: datetime


class QuarantinedProcess(Contract):
    pid: int
    name: str
    create_time: float


class QuarantineEntry(Contract):
    """An abandoned script whose processes survived the kill; retried until they die."""

    ticket: ScriptTicket
    task_id: str
    since: datetime
    processes: list[QuarantinedProcess]
    kill_attempts: int
    last_attempt: datetime | None = None


# --- helpers -----------------------------------------------------------------------------------

ContractT = TypeVar("ContractT", bound=Contract)


def parse(model: type[ContractT], data: str | bytes | dict[str, Any]) -> ContractT:
    """Validate wire data into `model`; failures become a ContractError naming every field."""
    try:
        if isinstance(data, dict):
            return model.model_validate(data)
        return model.model_validate_json(data)
    except ValidationError as error:
        raise ContractError(validation_problems(error, "(body)")) from None


def validation_problems(error: ValidationError, whole: str) -> dict[str, str]:
    """Each failing field's dotted path mapped to the rule it broke (`whole` for the root)."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or whole
        problems[field] = item["msg"].removeprefix("Value error, ")
    return problems


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- admin verbs of the API --------------------------------------------------------------------


class ScriptList(Contract):
    scripts: list[ScriptSummary]
    quarantined: list[QuarantineEntry]


class MutexSnapshot(Contract):
    mutexes: list[MutexState]


class AgentHealth(Contract):
    version: str
    instance: str
    pid: int
    started: datetime
    accepting_scripts: bool
    scripts_running: int
    scripts_known: int
    log_level: str


LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")


class LogLevelSetting(Contract):
    level: str

    @field_validator("level")
    @classmethod
    def _known(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()


class ApiError(Contract):
    """The body of every 4xx and 5xx answer: what went wrong, each field's rule, the remedy."""

    error: str
    problems: dict[str, str] = Field(default_factory=dict)
    remedy: str | None = None


class ProcessStatus(StrEnum):
    """What the operating system says a process is doing (psutil's status names)."""

    RUNNING = "running"
    SLEEPING = "sleeping"  # waiting on something that will wake it: a timer, a socket, a child
    DISK_SLEEP = "disk-sleep"  # uninterruptible wait, usually storage or a hung network mount
    STOPPED = "stopped"  # SIGSTOP / being traced: it will not move until someone continues it
    ZOMBIE = "zombie"
    OTHER = "other"


class ScriptProcess(Contract):
    pid: int
    parent_pid: int | None
    name: str
    status: ProcessStatus
    cpu_seconds: float  # user + system, since it started
    io_bytes: int | None  # read + written, where the platform tells
    started: datetime


class LadderRung(Contract):
    """One rung of a cancel as it happened: the signal, who got it, who was alive after."""

    signal: str  # SIGINT, SIGTERM or SIGKILL (CTRL_BREAK / TerminateProcess on Windows)
    at: datetime
    signalled: list[int]
    alive_after: list[int]
    waited_seconds: float


class ScriptProcessTree(Contract):
    """One script's processes as sampled at `sampled`, entry process first, and the rungs of
    its cancel ladder so far (empty unless a cancel is under way or done)."""

    ticket: ScriptTicket
    sampled: datetime
    processes: list[ScriptProcess]
    cancel_ladder: list[LadderRung] = Field(default_factory=list)
