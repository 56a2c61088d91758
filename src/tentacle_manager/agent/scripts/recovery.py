"""What a freshly started agent does with the workspaces an earlier agent process left.

Every ticket with a state file is accounted for, and nothing runs twice:
- finished tickets are served from disk as they are;
- a ticket that never got its mutex becomes Complete / -46 (it never started and is not re-run),
  unless the agent died while spawning it: a process carrying its tracking tag is re-adopted;
- a ticket whose process is still alive (same pid and start time) is re-adopted: it keeps its
  mutex ahead of any new work, its output keeps being captured and its exit is observed;
- a ticket whose process has gone gets the output it wrote meanwhile and Complete / -46 (its
  exit status went to the dead agent, so it cannot be known);
- quarantined processes that are still alive go back into the quarantine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import psutil

from tentacle_manager.agent.process.entry import AdoptedEntry
from tentacle_manager.agent.process.output_pump import OutputPump
from tentacle_manager.agent.process.tree import (
    TRACKING_VARIABLE,
    ScriptProcesses,
    is_alive,
    tagged_processes,
)
from tentacle_manager.agent.scripts.context import ScriptContext
from tentacle_manager.agent.scripts.lifecycle import watch_adopted
from tentacle_manager.agent.scripts.quarantine import revive
from tentacle_manager.agent.scripts.run import ScriptRun
from tentacle_manager.agent.workspace.output_log import Masker, OutputLogWriter
from tentacle_manager.agent.workspace.state import ScriptState, StateFileError, TrackedProcess
from tentacle_manager.agent.workspace.workspace import Workspace
from tentacle_manager.contracts import (
    ExitCode,
    MutexParty,
    ProcessOutputSource,
    ProcessState,
    ScriptPhase,
    ScriptTicket,
)

log = logging.getLogger(__name__)

NEVER_STARTED = (
    "The agent restarted before this script acquired its isolation mutex, so it never started."
)
MAY_HAVE_RUN = (
    "The agent restarted while this script was being started; it may have run, and its result "
    "is unknown."
)


def recover(
    work_root: Path, ctx: ScriptContext, masker: Masker, runs: dict[str, ScriptRun]
) -> None:
    found = list(_load_states(work_root))
    for workspace, state in found:
        _recover_quarantine(workspace, state, ctx)
    pending = {s.tracking_id for _, s in found if s.state is ProcessState.PENDING and s.tracking_id}
    spawned = _entries_by_tag(pending) if pending else {}
    for workspace, state in found:
        if state.state is ProcessState.PENDING and state.tracking_id in spawned:
            process = spawned[state.tracking_id]
            state.mark_started()
            state.process = TrackedProcess(pid=process.pid, create_time=process.create_time())
            workspace.state.save(state)
        if state.state is ProcessState.PENDING:
            # The raw output files are created just before the spawn: without them the script
            # certainly never ran; with them it may have run and exited before its Running save.
            message = MAY_HAVE_RUN if workspace.output_started() else NEVER_STARTED
            _conclude(workspace, state, masker, message, ExitCode.UNKNOWN_RESULT)
        elif state.state is ProcessState.RUNNING:
            _recover_running(workspace, state, ctx, masker, runs)


def _load_states(work_root: Path) -> Iterator[tuple[Workspace, ScriptState]]:
    if not work_root.is_dir():
        return
    for directory in sorted(work_root.iterdir()):
        if not directory.is_dir():
            continue
        workspace = Workspace(directory)
        store = workspace.state
        (directory / f".{store.path.name}.tmp").unlink(missing_ok=True)
        if not store.exists():
            continue
        try:
            yield workspace, store.load()
        except StateFileError as error:
            log.error("Cannot recover workspace: %s", error)


def _entries_by_tag(tags: set[str]) -> dict[str, psutil.Process]:
    """The oldest live process carrying each tracking tag (one pass over all processes)."""
    entries: dict[str, psutil.Process] = {}
    for process, environ in tagged_processes():
        tag = environ[TRACKING_VARIABLE]
        if tag not in tags or not is_alive(process):
            continue
        with contextlib.suppress(psutil.Error):
            known = entries.get(tag)
            if known is None or process.create_time() < known.create_time():
                entries[tag] = process
    return entries


def _recover_quarantine(workspace: Workspace, state: ScriptState, ctx: ScriptContext) -> None:
    if not state.quarantined:
        return
    alive = revive(state.quarantined)
    if alive:
        ctx.quarantine.add(ScriptTicket(task_id=state.ticket), state.task_id, workspace, alive)
    else:
        state.quarantined = []
        workspace.state.save(state)


def _recover_running(
    workspace: Workspace,
    state: ScriptState,
    ctx: ScriptContext,
    masker: Masker,
    runs: dict[str, ScriptRun],
) -> None:
    if state.process is not None:
        processes = ScriptProcesses(state.process.pid, state.process.create_time, state.tracking_id)
        # A live entry process, or (it has exited) processes still holding its output: either
        # way the script is not over, so it is adopted and ends the way it would have.
        if revive([state.process]) or processes.holding(
            [workspace.stdout_path, workspace.stderr_path]
        ):
            try:
                _adopt(workspace, state, processes, ctx, masker, runs)
                return
            except RuntimeError as error:
                log.error("Cannot re-adopt script %s: %s", state.ticket, error)
    message = (
        "The agent restarted while this script was running; the script has since exited and "
        "its result is unknown."
    )
    _conclude(workspace, state, masker, message, ExitCode.UNKNOWN_RESULT)


def _conclude(
    workspace: Workspace,
    state: ScriptState,
    masker: Masker,
    message: str,
    code: int,
) -> None:
    writer = OutputLogWriter(workspace.directory, masker)
    try:
        pump = OutputPump(writer, workspace.stdout_path, workspace.stderr_path)
        while pump.step():
            pass
        pump.step(final=True)
        pump.close()
        writer.write_text(ProcessOutputSource.STDOUT, message)
    finally:
        writer.close()
    state.mark_complete(code, ran_to_completion=False)
    workspace.state.save(state)
    workspace.discard_raw_output()


def _adopt(
    workspace: Workspace,
    state: ScriptState,
    processes: ScriptProcesses,
    ctx: ScriptContext,
    masker: Masker,
    runs: dict[str, ScriptRun],
) -> None:
    ticket = ScriptTicket(task_id=state.ticket)
    party = MutexParty(
        ticket=ticket,
        task_id=state.task_id,
        level=state.isolation,
        since=state.started or state.created,
    )
    lease = ctx.isolation.adopt(state.mutex_name, party)
    writer = OutputLogWriter(workspace.directory, masker)
    run = ScriptRun(ticket, workspace, state, writer, phase=ScriptPhase.RUNNING)
    run.processes = processes
    if state.cancel_requested:  # asked before the restart: the cancel carries on
        run.cancel_requested.set()
        run.phase = ScriptPhase.CANCELLING
    run.debug(f"The agent restarted and re-adopted the script (process {processes.entry_pid})")
    pump = OutputPump(writer, workspace.stdout_path, workspace.stderr_path)
    pump.start()
    entry = AdoptedEntry(processes)
    run.task = asyncio.get_running_loop().create_task(watch_adopted(run, lease, entry, pump, ctx))
    runs[ticket.key] = run
    log.info(
        "Re-adopted script %s (process %d) holding mutex %s",
        ticket,
        processes.entry_pid,
        state.mutex_name,
    )
