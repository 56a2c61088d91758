"""One script on one agent, from StartScript to CompleteScript, with the cancel -> abandon
escalation of Tentacle's client (reference/script-service.md 2.10, 5.11; behaviours 23, 42, 43).

What a caller can rely on:
- once `cancel` is set, StartScript is not sent (seed 000);
- a cancel is sent as soon as `cancel` is set, and again at every poll until the script is
  Complete; after `abandon_after` it becomes AbandonScript if the agent offers it;
- every output record reaches the caller once, in order (LastLogSequence is always passed);
- CompleteScript is sent whenever StartScript was, however the run ends, so no workspace is
  left behind on the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tentacle_manager.client.backoff import Backoff, BackoffSchedule
from tentacle_manager.client.protocol import AgentUnavailableError, ScriptServiceClient
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    Capability,
    CompleteScriptCommand,
    ExitCode,
    ProblemsError,
    ProcessOutput,
    ProcessState,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptTicket,
    StartScriptCommand,
    validation_problems,
)

log = logging.getLogger(__name__)

OutputListener = Callable[[ProcessOutput], None]

# Tentacle's PR 1226 advertises "AbandonScript"; its design documents say "AbandonScriptV2".
ABANDON_CAPABILITIES = frozenset(
    {Capability.ABANDON_SCRIPT.value, Capability.ABANDON_SCRIPT_V2.value}
)
RESERVED_EXIT_CODES = frozenset(code.value for code in ExitCode if code is not ExitCode.RUNNING)


class ExecutorSettingsError(ProblemsError):
    """Executor settings that cannot be used (fields are setting names)."""


class ExecutorSettings(BaseModel):
    """Timings of the executor, in seconds. See `backoff` for why polling starts at 50 ms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_wait: float = Field(
        0.2, ge=0, le=3600, description="StartScript waits this long for a short script to end"
    )
    poll: BackoffSchedule = Field(default_factory=BackoffSchedule)
    abandon_after: float | None = Field(
        120.0, ge=0, description="pending cancel before AbandonScript; None never abandons"
    )
    unavailable_for: float = Field(
        300.0, ge=0, description="how long the agent may go unanswered before the error surfaces"
    )
    complete_timeout: float = Field(
        60.0, gt=0, description="CompleteScript is given up after this (Tentacle: 1 minute)"
    )

    @classmethod
    def create(cls, **values: object) -> ExecutorSettings:
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as error:
            raise ExecutorSettingsError(validation_problems(error, "settings")) from None


class ScriptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed-out"  # waited too long for the isolation mutex (-44)


@dataclass(frozen=True)
class ScriptResult:
    """How one script ended. A script cancelled before StartScript was sent ends like one
    cancelled in the mutex queue (Complete, -43) with `start_sent` false."""

    ticket: ScriptTicket
    state: ProcessState
    exit_code: int
    logs: tuple[ProcessOutput, ...]
    cancel_requested: bool
    start_sent: bool = True
    abandon_sent: bool = False
    cleaned_up: bool = False

    @classmethod
    def not_started(cls, ticket: ScriptTicket) -> ScriptResult:
        return cls(
            ticket=ticket,
            state=ProcessState.COMPLETE,
            exit_code=ExitCode.CANCELED,
            logs=(),
            cancel_requested=True,
            start_sent=False,
        )

    @property
    def reserved_exit_code(self) -> ExitCode | None:
        """Tentacle's meaning of a reserved code (-41 ... -48); None for the script's own code."""
        return ExitCode(self.exit_code) if self.exit_code in RESERVED_EXIT_CODES else None

    @property
    def outcome(self) -> ScriptOutcome:
        """A cancelled run is never a success, even when the script still exited 0 (Tentacle
        throws OperationCanceledException then): that is what stops the next step."""
        if self.exit_code == ExitCode.ABANDONED:
            return ScriptOutcome.ABANDONED
        if self.cancel_requested or self.exit_code == ExitCode.CANCELED:
            return ScriptOutcome.CANCELLED
        if self.exit_code == ExitCode.TIMEOUT:
            return ScriptOutcome.TIMED_OUT
        return ScriptOutcome.SUCCEEDED if self.exit_code == 0 else ScriptOutcome.FAILED

    @property
    def succeeded(self) -> bool:
        return self.outcome is ScriptOutcome.SUCCEEDED


class ScriptExecutor:
    """Runs scripts on one agent. Holds no per-script state, so one executor may run many
    scripts at once; it only keeps CompleteScript calls that outlive a cancelled caller."""

    def __init__(self, client: ScriptServiceClient, settings: ExecutorSettings | None = None):
        self._client = client
        self._settings = settings or ExecutorSettings()
        self._cleanups: set[asyncio.Task[bool]] = set()

    async def run(
        self,
        command: StartScriptCommand,
        cancel: asyncio.Event,
        on_output: OutputListener | None = None,
    ) -> ScriptResult:
        """Run `command` to its end. Raises what StartScript raised, or AgentUnavailableError
        once the agent has gone unanswered for `unavailable_for`; CompleteScript is sent first.
        """
        # The cancel check and the StartScript call must have no await in between: an await
        # lets the event loop run whatever sets `cancel`, and a script would start after its
        # task was cancelled (seed 000). From here to `client.start_script` there are only
        # plain calls and awaits of coroutines that have not suspended yet, which do not yield.
        if cancel.is_set():
            return ScriptResult.not_started(command.script_ticket)
        command = self._with_first_wait(command)
        watch = _Watch(self._client, self._settings, command, cancel, on_output)
        cleaned_up = False
        try:
            await watch.follow()
        finally:
            if watch.start_sent:
                cleaned_up = await self._clean_up(watch)
        return watch.result(cleaned_up)

    def _with_first_wait(self, command: StartScriptCommand) -> StartScriptCommand:
        """A short script is over in one round trip; the command's own wait wins if it has one."""
        if command.duration_to_wait_for_script_to_finish is not None:
            return command
        wait = timedelta(seconds=self._settings.first_wait)
        return command.model_copy(update={"duration_to_wait_for_script_to_finish": wait})

    async def _clean_up(self, watch: _Watch) -> bool:
        """Shielded, so a caller cancelled again while we clean up still leaves nothing behind."""
        cleanup = asyncio.get_running_loop().create_task(
            self._complete(watch.ticket, stop_first=not watch.complete)
        )
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)
        return await asyncio.shield(cleanup)

    async def _complete(self, ticket: ScriptTicket, *, stop_first: bool) -> bool:
        """Never raises: a failed cleanup must not hide the script's result or the error on its
        way out. Like Tentacle, it is only a warning. A script we stopped watching before it
        ended is cancelled first, because Tentacle's CompleteScript alone leaves it running."""
        try:
            async with asyncio.timeout(self._settings.complete_timeout):
                if stop_first:
                    await self._client.cancel_script(CancelScriptCommand(ticket=ticket))
                await self._client.complete_script(CompleteScriptCommand(ticket=ticket))
        except Exception as error:
            log.warning(
                "Failed to clean up the workspace of script %s on the agent: %s", ticket, error
            )
            return False
        return True


class _Watch:
    """The state of one run: what was sent, what was seen, and whether we are cancelling."""

    def __init__(
        self,
        client: ScriptServiceClient,
        settings: ExecutorSettings,
        command: StartScriptCommand,
        cancel: asyncio.Event,
        on_output: OutputListener | None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._command = command
        self._cancel = cancel
        self._loop = asyncio.get_running_loop()
        self._delays = Backoff(settings.poll)
        self._outage = _Outage(settings.unavailable_for)
        self._cancelling_since: float | None = None
        self._abandon_offered: bool | None = None
        self._sequence = 0
        self._logs: list[ProcessOutput] = []
        self._on_output = on_output
        self.status: ScriptStatusResponse | None = None
        self.start_sent = False
        self.abandon_sent = False

    @property
    def ticket(self) -> ScriptTicket:
        return self._command.script_ticket

    @property
    def complete(self) -> bool:
        return self.status is not None and self.status.state is ProcessState.COMPLETE

    async def follow(self) -> None:
        """Ask until the script is Complete; an unreachable agent is asked again."""
        while not self.complete:
            await self._pause()
            try:
                status = await self._ask()
            except AgentUnavailableError as error:
                self._outage.note(error, self._loop.time())
                continue
            self._outage.end()
            self._take(status)

    def result(self, cleaned_up: bool) -> ScriptResult:
        assert self.status is not None  # follow() returned, so the script is Complete
        return ScriptResult(
            ticket=self.ticket,
            state=self.status.state,
            exit_code=self.status.exit_code,
            logs=tuple(self._logs),
            cancel_requested=self._cancel.is_set(),
            abandon_sent=self.abandon_sent,
            cleaned_up=cleaned_up,
        )

    async def _pause(self) -> None:
        """None before the first StartScript; a cancel cuts a pause short and restarts the
        back-off, so the first CancelScript goes out at once."""
        if not self.start_sent:
            return
        if self._cancelling_since is not None:
            await asyncio.sleep(self._delays.next())
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._delays.next()):
                await self._cancel.wait()
        if self._cancel.is_set():
            self._cancelling_since = self._loop.time()
            self._delays.reset()

    async def _ask(self) -> ScriptStatusResponse:
        if self._cancelling_since is not None:
            return await self._stop()
        if self.status is None:
            return await self._start()
        return await self._client.get_status(
            ScriptStatusRequest(ticket=self.ticket, last_log_sequence=self._sequence)
        )

    async def _start(self) -> ScriptStatusResponse:
        """StartScript (idempotent by ticket, so retried freely). It may wait `first_wait`; a
        cancel meanwhile is sent alongside rather than after it."""
        self.start_sent = True
        early_cancel = self._loop.create_task(self._cancel_when_set())
        try:
            return await self._client.start_script(self._command)
        finally:
            early_cancel.cancel()

    async def _cancel_when_set(self) -> None:
        await self._cancel.wait()
        try:
            await self._client.cancel_script(CancelScriptCommand(ticket=self.ticket))
        except Exception:
            # Only a head start: the loop sends the cancel again and reports what fails.
            log.debug("Early cancel of %s failed", self.ticket, exc_info=True)

    async def _stop(self) -> ScriptStatusResponse:
        if await self._abandon_due():
            self.abandon_sent = True
            return await self._client.abandon_script(
                AbandonScriptCommand(ticket=self.ticket, last_log_sequence=self._sequence)
            )
        return await self._client.cancel_script(
            CancelScriptCommand(ticket=self.ticket, last_log_sequence=self._sequence)
        )

    async def _abandon_due(self) -> bool:
        """Abandon only after `abandon_after` of pending cancel, and only on an agent that
        offers it; any other agent keeps receiving CancelScript."""
        after = self._settings.abandon_after
        assert self._cancelling_since is not None
        if after is None or self._loop.time() - self._cancelling_since < after:
            return False
        if self._abandon_offered is None:
            offered = (await self._client.capabilities()).supported_capabilities
            self._abandon_offered = not ABANDON_CAPABILITIES.isdisjoint(offered)
        return self._abandon_offered

    def _take(self, status: ScriptStatusResponse) -> None:
        """Keep only records past the last one seen: StartScript always answers from
        sequence 0, and a retried call may repeat what an unanswered one already delivered."""
        first = status.next_log_sequence - len(status.logs)
        fresh = status.logs[max(0, self._sequence - first) :]
        self._sequence = max(self._sequence, status.next_log_sequence)
        self.status = status
        for record in fresh:
            self._logs.append(record)
            if self._on_output is not None:
                self._on_output(record)


@dataclass
class _Outage:
    """How long the agent has gone without answering; too long and the error surfaces."""

    limit: float
    since: float | None = None

    def note(self, error: AgentUnavailableError, now: float) -> None:
        if self.since is None:
            self.since = now
        if now - self.since >= self.limit:
            raise AgentUnavailableError(
                f"the agent has not answered for {now - self.since:.1f} s "
                f"(unavailable_for is {self.limit:g} s): {error}"
            ) from error

    def end(self) -> None:
        self.since = None
