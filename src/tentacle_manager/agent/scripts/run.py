"""One ticket this agent knows: its workspace, durable state, output log and live controls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tentacle_manager.agent.process.ladder import LadderStep
from tentacle_manager.agent.process.tree import ScriptProcesses
from tentacle_manager.agent.workspace.output_log import OutputLogWriter, read_records
from tentacle_manager.agent.workspace.state import ScriptState, TrackedProcess
from tentacle_manager.agent.workspace.workspace import Workspace
from tentacle_manager.contracts import (
    ExitCode,
    ProcessOutput,
    ProcessOutputSource,
    ProcessState,
    ScriptIsolationLevel,
    ScriptPhase,
    ScriptStatusResponse,
    ScriptSummary,
    ScriptTicket,
)

RUNNING_SAVE_DELAY = 0.05

ABANDONED_LINE = (
    "Tentacle has abandoned this script. The underlying script process may still be running "
    "on this host."
)


@dataclass(eq=False)
class ScriptRun:
    ticket: ScriptTicket
    workspace: Workspace
    state: ScriptState
    writer: OutputLogWriter
    phase: ScriptPhase = ScriptPhase.QUEUED
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    abandon_requested: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    processes: ScriptProcesses | None = None
    timeline: list[LadderStep] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    sweep: asyncio.Task[None] | None = None  # finds and quarantines survivors of an abandon
    detached: bool = False
    _deferred_save: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def is_complete(self) -> bool:
        return self.state.is_complete

    def save(self) -> None:
        self._cancel_deferred_save()
        self.workspace.state.save(self.state)

    def flush(self) -> None:
        """Make a deferred state change durable now, because someone is about to see it."""
        if self._deferred_save is not None:
            self.save()

    def _cancel_deferred_save(self) -> None:
        if self._deferred_save is not None:
            self._deferred_save.cancel()
            self._deferred_save = None

    def stdout(self, *lines: str) -> None:
        """One record per line, written as one block."""
        self.writer.write_text(ProcessOutputSource.STDOUT, "\n".join(lines))

    def stderr(self, text: str) -> None:
        self.writer.write_text(ProcessOutputSource.STDERR, text)

    def debug(self, text: str) -> None:
        self.writer.write_text(ProcessOutputSource.DEBUG, text)

    def wait_block(self, message: str) -> None:
        """Tentacle's three-record block that makes the server show a waiting message."""
        self.stdout("##octopus[stdout-wait]", message, "##octopus[stdout-default]")

    def mark_running(self, process: TrackedProcess) -> None:
        """Record Started and the process to re-adopt.

        The save is deferred by RUNNING_SAVE_DELAY (status() reports Pending meanwhile), so a
        quick script pays for two fsyncs (Pending, Complete) instead of three. A crash in the
        meantime leaves the ticket Pending on disk, and recovery finds its process by the
        tracking tag, so nothing is lost by waiting.
        """
        self.state.mark_started()
        self.state.process = process
        loop = asyncio.get_running_loop()
        self._deferred_save = loop.call_later(RUNNING_SAVE_DELAY, self.save)

    def finish(self, exit_code: int, ran_to_completion: bool = True) -> None:
        """Persist the result, then report it: nothing reads Complete before it is on disk."""
        self.state.mark_complete(exit_code, ran_to_completion)
        self.save()
        self.writer.close()
        self.workspace.discard_raw_output()
        self.phase = phase_of(self.state)
        self.finished.set()

    def status(self, after: int) -> ScriptStatusResponse:
        """Only what is on disk is reported: while the Running save is deferred, Pending.

        Reporting Pending a little longer costs a poller nothing, where making Running durable
        at the first poll cost every observed quick script a third fsync."""
        reported = ProcessState.PENDING if self._deferred_save is not None else None
        return _response(self.ticket, self.state, self.writer.read(after), reported)

    def summary(self) -> ScriptSummary:
        self.flush()
        summary = summarise(self.state, self.phase, self.processes)
        if self.is_complete:
            return summary
        return summary.model_copy(
            update={
                "next_log_sequence": self.writer.position.count,
                "last_line": self.writer.last_line,
            }
        )


def phase_of(state: ScriptState) -> ScriptPhase:
    if state.state is ProcessState.PENDING:
        return ScriptPhase.QUEUED
    if state.state is ProcessState.RUNNING:
        return ScriptPhase.RUNNING
    return ScriptPhase.ABANDONED if state.exit_code == ExitCode.ABANDONED else ScriptPhase.COMPLETE


def summarise(
    state: ScriptState, phase: ScriptPhase, processes: ScriptProcesses | None = None
) -> ScriptSummary:
    pid = processes.entry_pid if processes else (state.process.pid if state.process else None)
    return ScriptSummary(
        ticket=ScriptTicket(task_id=state.ticket),
        task_id=state.task_id,
        phase=phase,
        state=state.state,
        exit_code=state.reported_exit_code,
        mutex_name=state.mutex_name,
        isolation=ScriptIsolationLevel(state.isolation),
        created=state.created,
        started=state.started,
        completed=state.completed,
        pid=pid,
    )


def status_from_disk(workspace: Workspace, state: ScriptState, after: int) -> ScriptStatusResponse:
    return _response(
        ScriptTicket(task_id=state.ticket), state, read_records(workspace.directory, after)
    )


def _response(
    ticket: ScriptTicket,
    state: ScriptState,
    records: tuple[list[ProcessOutput], int],
    reported: ProcessState | None = None,
) -> ScriptStatusResponse:
    logs, next_sequence = records
    return ScriptStatusResponse.model_construct(
        ticket=ticket,
        state=state.state if reported is None else reported,
        exit_code=state.reported_exit_code,
        logs=logs,
        next_log_sequence=next_sequence,
    )
