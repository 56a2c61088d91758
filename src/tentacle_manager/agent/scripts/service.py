"""ScriptServiceV2 with abandon: the verbs a server, the CLI and the manager call.

Semantics follow Tentacle's ScriptServiceV2 (see docs/differences-from-tentacle.md for where we
deliberately do better). The client-chosen ticket is the idempotency key: the check and the
registration of a new ticket happen without yielding to the event loop, so any number of
concurrent starts of one ticket run it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path

from tentacle_manager.agent.isolation import IsolationRegistry
from tentacle_manager.agent.process.sampling import rung_of, sample
from tentacle_manager.agent.process.shell import Shell, shell_for_this_platform
from tentacle_manager.agent.process.tree import Signaller
from tentacle_manager.agent.scripts.cleaner import clean_workspaces
from tentacle_manager.agent.scripts.context import ScriptContext
from tentacle_manager.agent.scripts.lifecycle import execute
from tentacle_manager.agent.scripts.quarantine import Quarantine
from tentacle_manager.agent.scripts.recovery import recover
from tentacle_manager.agent.scripts.run import ScriptRun, phase_of, status_from_disk, summarise
from tentacle_manager.agent.scripts.settings import ScriptServiceSettings
from tentacle_manager.agent.workspace.disk_space import ensure_free_space
from tentacle_manager.agent.workspace.output_log import Masker, OutputLogWriter
from tentacle_manager.agent.workspace.script_files import WorkspaceEscapeError
from tentacle_manager.agent.workspace.state import ScriptState, StateFileError
from tentacle_manager.agent.workspace.workspace import (
    WORK_FOLDER,
    Workspace,
    WorkspaceDeleteError,
)
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CapabilitiesResponse,
    Capability,
    CompleteScriptCommand,
    ContractError,
    ExitCode,
    ProcessState,
    QuarantineEntry,
    ScriptPhase,
    ScriptProcessTree,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptSummary,
    ScriptTicket,
    StartScriptCommand,
    utc_now,
)

log = logging.getLogger(__name__)


class ServiceStoppingError(RuntimeError):
    """The agent is shutting down and accepts no new scripts; running ones carry on."""


class ScriptService:
    def __init__(
        self,
        home: Path,
        settings: ScriptServiceSettings | None = None,
        shell: Shell | None = None,
    ):
        self.home = Path(home)
        self.settings = settings or ScriptServiceSettings()
        self.work_root = self.home / WORK_FOLDER
        self.isolation = IsolationRegistry()
        signaller = Signaller(enabled=not self.settings.disable_process_kill)
        self._quarantine = Quarantine(signaller, self.settings.quarantine_retry_interval)
        self._masker = Masker(self.settings.sensitive_values)
        self._ctx = ScriptContext(
            settings=self.settings,
            isolation=self.isolation,
            signaller=signaller,
            shell=shell or shell_for_this_platform(),
            quarantine=self._quarantine,
            environment=self._script_environment(),
        )
        self._runs: dict[str, ScriptRun] = {}
        self._cancelled_before_start: OrderedDict[str, None] = OrderedDict()
        self._background: list[asyncio.Task[None]] = []
        self._accepting = False

    # --- life of the service -----------------------------------------------------------------

    async def open(self) -> None:
        """Recover what an earlier agent left, then start accepting scripts."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        recover(self.work_root, self._ctx, self._masker, self._runs)
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(self._quarantine.run()),
            loop.create_task(self._clean_periodically()),
        ]
        self._accepting = True

    def stop_accepting(self) -> None:
        """Refuse new scripts from now on; running ones carry on."""
        self._accepting = False

    async def close(self) -> None:
        """Stop accepting scripts and let go of running ones, leaving them re-adoptable."""
        self.stop_accepting()
        tasks = [*self._background, *(r.task for r in self._runs.values() if r.task)]
        tasks += [r.sweep for r in self._runs.values() if r.sweep]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background = []

    async def __aenter__(self) -> ScriptService:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- ScriptServiceV2 -------------------------------------------------------------------------

    async def start_script(self, command: StartScriptCommand) -> ScriptStatusResponse:
        ticket = command.script_ticket
        run = self._runs.get(ticket.key)
        if run is None:
            on_disk = self._status_from_disk(ticket, 0)
            if on_disk is not None:
                return on_disk
            run = self._begin(command)
        await self._wait_for(run, command.duration_to_wait_for_script_to_finish)
        return run.status(0)

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse:
        return self._status(request.ticket, request.last_log_sequence)

    async def cancel_script(self, command: CancelScriptCommand) -> ScriptStatusResponse:
        run = self._runs.get(command.ticket.key)
        if run is not None:
            if not run.is_complete and not run.cancel_requested.is_set():
                run.cancel_requested.set()
                run.state.cancel_requested = True
                run.save()  # a restarted agent carries on with the cancel
                if run.phase is ScriptPhase.RUNNING:
                    run.phase = ScriptPhase.CANCELLING
            return run.status(command.last_log_sequence)
        status = self._status_from_disk(command.ticket, command.last_log_sequence)
        if status is None:
            self._remember_cancel(command.ticket)
            return _unknown(command.ticket, command.last_log_sequence)
        return status

    async def abandon_script(self, command: AbandonScriptCommand) -> ScriptStatusResponse:
        """Stop waiting for a script that will not die, freeing its mutex.

        A finished script keeps its real exit code; a queued one is cancelled (-43), since
        abandoning something that never started would silently do nothing.
        """
        run = self._runs.get(command.ticket.key)
        if run is None:
            return self._status(command.ticket, command.last_log_sequence)
        if not run.is_complete:
            if run.phase is ScriptPhase.QUEUED:
                run.cancel_requested.set()
            else:
                run.abandon_requested.set()
            await run.finished.wait()
        return run.status(command.last_log_sequence)

    async def complete_script(self, command: CompleteScriptCommand) -> None:
        """Forget a ticket and delete its workspace.

        A script that is still running is cancelled first and, if it will not die, abandoned;
        Tentacle just drops it and leaves the process running unmanaged.
        """
        ticket = command.ticket
        run = self._runs.get(ticket.key)
        if run is not None:
            await self._stop(run)
            if run.sweep is not None:
                await run.sweep
            if self._runs.get(ticket.key) is run:  # a concurrent retry may have removed it
                del self._runs[ticket.key]
        workspace = Workspace.for_ticket(self.work_root, ticket)
        if not workspace.exists():
            return
        if self._quarantine.holds(ticket.key):
            self._quarantine.delete_workspace_when_clear(ticket)
            log.warning(
                "Keeping workspace %s while its abandoned processes are quarantined",
                workspace.directory,
            )
            return
        try:
            workspace.delete()
        except WorkspaceDeleteError as error:
            if _exit_code_on_disk(workspace) != ExitCode.ABANDONED:
                raise
            log.warning(
                "Could not delete abandoned workspace at %s. Leaving on disk; the underlying "
                "script process may still hold open file handles. (%s)",
                workspace.directory,
                error,
            )

    @property
    def accepting(self) -> bool:
        return self._accepting

    def capabilities(self) -> CapabilitiesResponse:
        return CapabilitiesResponse(supported_capabilities=[c.value for c in Capability])

    # --- inspection ------------------------------------------------------------------------------

    def list_scripts(self) -> list[ScriptSummary]:
        """Every ticket this agent knows: the live ones, then those only on disk."""
        summaries = [run.summary() for run in self._runs.values()]
        if self.work_root.is_dir():
            for directory in sorted(self.work_root.iterdir()):
                if directory.name in self._runs or not directory.is_dir():
                    continue
                store = Workspace(directory).state
                with contextlib.suppress(StateFileError):
                    if store.exists():
                        state = store.load()
                        summaries.append(summarise(state, phase_of(state)))
        return summaries

    async def process_tree(self, script: ScriptTicket) -> ScriptProcessTree | None:
        """The script's live processes (none once it has ended); None for an unknown ticket."""
        run = self._runs.get(script.key)
        if run is None:
            if not Workspace.for_ticket(self.work_root, script).exists():
                return None
            return ScriptProcessTree(ticket=script, sampled=utc_now(), processes=[])
        processes = run.processes
        found = [] if processes is None else await asyncio.to_thread(sample, processes)
        ladder = [rung_of(step) for step in run.timeline]
        return ScriptProcessTree(
            ticket=script, sampled=utc_now(), processes=found, cancel_ladder=ladder
        )

    def quarantined(self) -> list[QuarantineEntry]:
        return self._quarantine.entries()

    def retry_quarantine(self) -> None:
        """Kill quarantined processes again now instead of at the next interval."""
        self._quarantine.retry()

    # --- internals -------------------------------------------------------------------------------

    def _begin(self, command: StartScriptCommand) -> ScriptRun:
        """Prepare and register a new ticket. Runs without awaiting: see the module docstring."""
        if not self._accepting:
            raise ServiceStoppingError("The agent is stopping and does not accept new scripts.")
        ticket = command.script_ticket
        ensure_free_space(self.work_root, self.settings.minimum_free_disk_bytes)
        workspace = Workspace.for_ticket(self.work_root, ticket)
        try:
            workspace.prepare(command, self._ctx.shell)
        except WorkspaceEscapeError as error:
            with contextlib.suppress(WorkspaceDeleteError):
                workspace.delete()
            raise ContractError({"Files": str(error)}) from None
        state = ScriptState(
            created=utc_now(),
            ticket=ticket.task_id,
            task_id=command.task_id,
            isolation=command.isolation,
            mutex_name=command.mutex_name,
            mutex_timeout=command.script_isolation_mutex_timeout,
            tracking_id=f"tentacle_{ticket.key}_{uuid.uuid4().hex[:12]}",
        )
        workspace.state.save(state)
        run = ScriptRun(
            ticket, workspace, state, OutputLogWriter(workspace.directory, self._masker)
        )
        if self._cancelled_before_start.pop(ticket.key, "absent") is None:
            run.cancel_requested.set()
        self._runs[ticket.key] = run
        run.task = asyncio.get_running_loop().create_task(execute(run, command, self._ctx))
        return run

    async def _wait_for(self, run: ScriptRun, duration: timedelta | None) -> None:
        if duration is None or run.is_complete:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.finished.wait()), duration.total_seconds())

    async def _stop(self, run: ScriptRun) -> None:
        """Cancel; if the ladder ends with processes that will not die, abandon."""
        if run.is_complete:
            return
        run.cancel_requested.set()
        timings = self.settings.ladder
        patience = timings.interrupt_grace + timings.terminate_grace + timings.kill_grace
        patience += self.settings.output_holder_grace + 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.finished.wait()), patience)
        if not run.is_complete:
            run.abandon_requested.set()
            await run.finished.wait()

    def _status(self, ticket: ScriptTicket, after: int) -> ScriptStatusResponse:
        run = self._runs.get(ticket.key)
        if run is not None:
            return run.status(after)
        return self._status_from_disk(ticket, after) or _unknown(ticket, after)

    def _status_from_disk(self, ticket: ScriptTicket, after: int) -> ScriptStatusResponse | None:
        workspace = Workspace.for_ticket(self.work_root, ticket)
        store = workspace.state
        if not store.exists():
            return None
        state = store.load()
        if state.state is not ProcessState.COMPLETE:
            # Not ours and not finished: only possible for a workspace recovery could not
            # read before; its result is unknown (Tentacle's -46).
            state.mark_complete(ExitCode.UNKNOWN_RESULT, ran_to_completion=False)
            store.save(state)
        return status_from_disk(workspace, state, after)

    def _remember_cancel(self, ticket: ScriptTicket) -> None:
        """A cancel for a ticket not seen yet: if its start arrives later, it must not run."""
        limit = self.settings.cancelled_ticket_memory
        if limit == 0:
            return
        self._cancelled_before_start[ticket.key] = None
        while len(self._cancelled_before_start) > limit:
            self._cancelled_before_start.popitem(last=False)

    async def _clean_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._forget_stale_runs()
            await loop.run_in_executor(
                None,
                clean_workspaces,
                self.work_root,
                self.settings.cleaner_delete_older_than,
                self._in_use,
            )
            await asyncio.sleep(self.settings.cleaner_interval)

    def _forget_stale_runs(self) -> None:
        """Finished tickets that nobody completed move from memory to disk only, so the cleaner
        can remove them later and memory does not grow with every ticket ever run."""
        cutoff = utc_now() - timedelta(seconds=self.settings.cleaner_delete_older_than)
        for key, run in list(self._runs.items()):
            completed = run.state.completed
            if run.is_complete and completed is not None and completed < cutoff:
                del self._runs[key]

    def _in_use(self, folder: str) -> bool:
        """Called from the cleaner's thread: only reads."""
        return folder in self._runs or self._quarantine.holds(folder)

    def _script_environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment.update(
            TentacleHome=str(self.home),
            TentacleJournal=str(self.home / "DeploymentJournal.xml"),
            CalamariPackageRetentionJournalPath=str(self.home / "PackageRetentionJournal.json"),
        )
        environment.update(self.settings.environment)
        return environment


def _unknown(ticket: ScriptTicket, after: int) -> ScriptStatusResponse:
    return ScriptStatusResponse(
        ticket=ticket,
        state=ProcessState.COMPLETE,
        exit_code=ExitCode.UNKNOWN_SCRIPT,
        logs=[],
        next_log_sequence=max(after, 0),
    )


def _exit_code_on_disk(workspace: Workspace) -> int | None:
    try:
        return workspace.state.load().exit_code
    except StateFileError:
        return None
