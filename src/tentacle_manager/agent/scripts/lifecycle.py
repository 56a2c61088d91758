"""The life of one script: wait for the mutex, run, watch, stop, and record how it ended.

Order matters and is the point of this module:
- cancel before the process starts ends at -43 and the process never starts (even when the
  cancel lands just after the mutex was granted);
- state is saved before it can be reported (Running before the spawn, Complete after the last
  output is committed);
- abandon kills what it can, releases the mutex at once, then writes the honest line and -48;
  what survived goes to the quarantine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from tentacle_manager.agent.isolation import MutexWaitOutcome
from tentacle_manager.agent.isolation.registry import Lease
from tentacle_manager.agent.process import startup_detection
from tentacle_manager.agent.process.entry import ChildEntry, EntryProcess
from tentacle_manager.agent.process.ladder import find_tree, run_ladder, wait_until_dead
from tentacle_manager.agent.process.launcher import LaunchError, launch
from tentacle_manager.agent.process.output_pump import OutputPump
from tentacle_manager.agent.process.tree import (
    TRACKING_VARIABLE,
    Rung,
    ScriptProcesses,
    describe,
)
from tentacle_manager.agent.scripts.context import ScriptContext
from tentacle_manager.agent.scripts.run import ABANDONED_LINE, ScriptRun
from tentacle_manager.agent.workspace.state import TrackedProcess
from tentacle_manager.contracts import (
    ExitCode,
    MutexParty,
    ScriptPhase,
    StartScriptCommand,
)

log = logging.getLogger(__name__)

# Output already written when a script is abandoned is still converted, up to this much, so the
# log shows what the script was doing; a runaway writer cannot delay the abandon.
ABANDON_DRAIN_LIMIT = 4 << 20
KILL_ROUNDS = 3


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    ran_to_completion: bool = True
    gave_up: bool = False  # stopped waiting for processes that may still run
    abandoned: bool = False  # because the caller abandoned the script


async def execute(run: ScriptRun, command: StartScriptCommand, ctx: ScriptContext) -> None:
    """Run a freshly started ticket to its end. Never raises except on agent shutdown."""
    await _contained(run, _execute(run, command, ctx))


async def watch_adopted(
    run: ScriptRun, lease: Lease, entry: EntryProcess, pump: OutputPump, ctx: ScriptContext
) -> None:
    """Carry on watching a script that an earlier agent process started."""
    await _contained(run, _watch(run, lease, entry, pump, ctx))


async def _contained(run: ScriptRun, life: Coroutine[Any, Any, None]) -> None:
    """An agent bug ends the script at -41 (Tentacle's fatal code) instead of leaving it
    Running for ever; agent shutdown detaches it, leaving the process re-adoptable."""
    try:
        await life
    except asyncio.CancelledError:
        _detach(run)
        raise
    except Exception:
        log.exception("Script %s failed inside the agent", run.ticket)
        if not run.is_complete:
            run.finish(ExitCode.FATAL)


async def _execute(run: ScriptRun, command: StartScriptCommand, ctx: ScriptContext) -> None:
    lease = await _acquire(run, command, ctx)
    if lease is None:
        return
    try:
        if run.cancel_requested.is_set():
            _end_before_start(
                run,
                "This task was canceled before it could start.",
                ExitCode.CANCELED,
                "Script execution canceled.",
            )
            return
        launched = _launch(run, command, ctx)
        if launched is not None:
            entry, pump = launched
            await _watch(run, lease, entry, pump, ctx)
    finally:
        lease.release()  # whatever happened; releasing twice is harmless


async def _acquire(run: ScriptRun, command: StartScriptCommand, ctx: ScriptContext) -> Lease | None:
    level = command.isolation
    run.stdout(
        "##octopus[stdout-verbose]",
        f"Acquiring isolation mutex {command.mutex_name} with {level.label} in {command.task_id}",
        "##octopus[stdout-default]",
    )
    party = MutexParty(
        ticket=run.ticket, task_id=command.task_id, level=level, since=run.state.created
    )
    wait = await ctx.isolation.acquire(
        command.mutex_name,
        party,
        cancelled=run.cancel_requested,
        timeout=command.mutex_timeout,
        notify=run.wait_block,
    )
    if wait.outcome is MutexWaitOutcome.CANCELED:
        _end_before_start(run, wait.final_message, ExitCode.CANCELED, "Script execution canceled.")
        return None
    if wait.outcome is MutexWaitOutcome.TIMED_OUT:
        _end_before_start(run, wait.final_message, ExitCode.TIMEOUT, "Script execution timed out.")
        return None
    return wait.lease


def _end_before_start(run: ScriptRun, message: str | None, code: int, last_line: str) -> None:
    if message:
        run.stdout(message)
    run.stdout(last_line)
    run.finish(code)


def _launch(
    run: ScriptRun, command: StartScriptCommand, ctx: ScriptContext
) -> tuple[EntryProcess, OutputPump] | None:
    workspace = run.workspace
    shell = ctx.shell
    run.phase = ScriptPhase.RUNNING
    environment = dict(ctx.environment)
    environment[TRACKING_VARIABLE] = run.state.tracking_id
    command_line = shell.command_line(workspace.bootstrap_path(shell), list(command.arguments))
    run.debug(
        f"Starting {shell.executable} in working directory '{workspace.directory}' "
        f"using 'UTF-8' encoding running as '{_user()}'"
    )
    try:
        launched = launch(
            command_line,
            workspace.directory,
            environment,
            workspace.stdout_path,
            workspace.stderr_path,
        )
    except LaunchError as error:
        run.stderr(f"An exception was thrown when invoking {shell.executable}: {error.strerror}")
        run.finish(ExitCode.SHELL_INVOCATION_ERROR)
        return None
    run.processes = ScriptProcesses(launched.pid, launched.create_time, run.state.tracking_id)
    run.mark_running(TrackedProcess(pid=launched.pid, create_time=launched.create_time))
    pump = OutputPump(run.writer, workspace.stdout_path, workspace.stderr_path, launched.output_fds)
    pump.start()
    return ChildEntry(launched), pump


async def _watch(
    run: ScriptRun, lease: Lease, entry: EntryProcess, pump: OutputPump, ctx: ScriptContext
) -> None:
    """Supervise to the end. A normal end releases the mutex only once the output and Complete
    are on disk (so a restart never finds two holders); giving up releases it at once."""
    try:
        try:
            outcome = await _supervise(run, entry, pump, ctx)
        except BaseException:
            pump.close()
            raise
        if outcome.gave_up:
            lease.release()
        await pump.finish(ABANDON_DRAIN_LIMIT if outcome.gave_up else None)
        if outcome.abandoned:
            run.stdout(ABANDONED_LINE)
        if outcome.gave_up:
            run.sweep = asyncio.get_running_loop().create_task(_sweep_survivors(run, ctx))
        else:
            run.debug(
                f"Process {ctx.shell.executable} in {run.workspace.directory} exited with code "
                f"{outcome.exit_code}"
            )
        run.finish(outcome.exit_code, outcome.ran_to_completion)
    finally:
        lease.release()


async def _supervise(
    run: ScriptRun, entry: EntryProcess, pump: OutputPump, ctx: ScriptContext
) -> Outcome:
    exit_wait = asyncio.ensure_future(entry.wait())
    abandon_wait = asyncio.ensure_future(run.abandon_requested.wait())
    cancel_wait = asyncio.ensure_future(run.cancel_requested.wait())
    startup = _startup_deadline(run, ctx)
    ladder: asyncio.Future | None = None
    try:
        while not exit_wait.done():
            waiting = {exit_wait, abandon_wait} | ({cancel_wait} if ladder is None else set())
            waiting |= {startup} if startup is not None else set()
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if abandon_wait.done():
                return _abandon(run, ctx, ladder)
            if startup is not None and startup.done() and not exit_wait.done():
                if startup_detection.claim_start(run.workspace.directory):
                    return _never_started(run, ctx, ladder)
                startup = None  # the script did start: nothing more to watch for
            if ladder is None and cancel_wait.done():
                ladder = _start_ladder(run, ctx)
        exit_code = exit_wait.result()
        tail = ladder or asyncio.ensure_future(_reap_output_holders(run, ctx))
        await asyncio.wait({tail, abandon_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not tail.done():
            return _abandon(run, ctx, tail, exit_code)
        survivors = tail.result()
        while survivors:
            # Cancel reached every process, but some would not die: hold the mutex (they may
            # still be working) until they do, or until the caller abandons the script.
            await asyncio.wait({abandon_wait}, timeout=0.5)
            if abandon_wait.done():
                return _abandon(run, ctx, None, exit_code)
            survivors = await wait_until_dead(survivors, 0)
        if exit_code is None:
            return Outcome(ExitCode.UNKNOWN_RESULT, ran_to_completion=False)
        return Outcome(exit_code)
    finally:
        for waiter in (exit_wait, abandon_wait, cancel_wait, startup):
            if waiter is not None:
                waiter.cancel()


def _start_ladder(run: ScriptRun, ctx: ScriptContext) -> asyncio.Future:
    run.phase = ScriptPhase.CANCELLING
    assert run.processes is not None

    async def climb() -> list:
        result = await run_ladder(
            run.processes, ctx.signaller, ctx.settings.ladder, run.debug, run.timeline.append
        )
        return result.survivors

    return asyncio.ensure_future(climb())


async def _reap_output_holders(run: ScriptRun, ctx: ScriptContext) -> list:
    """The entry process has exited; processes that inherited its output files get a short
    grace to finish, then are killed, so a stray grandchild cannot keep the script running."""
    assert run.processes is not None
    if run.processes.group_is_empty():
        # The common case, decided without a scan. A process that left the group and still
        # holds the output only writes to a file nobody waits on; cancel would still reach it.
        return []
    paths = [run.workspace.stdout_path, run.workspace.stderr_path]
    loop = asyncio.get_running_loop()
    holders = await loop.run_in_executor(None, run.processes.holding, paths)
    if not holders:
        return []
    grace = ctx.settings.output_holder_grace
    run.debug(
        f"The script exited but {len(holders)} process(es) still hold its output: "
        f"{describe(holders)}; waiting {grace:g} s before killing them"
    )
    cancel = asyncio.ensure_future(run.cancel_requested.wait())
    try:
        remaining = asyncio.ensure_future(wait_until_dead(holders, grace))
        await asyncio.wait({remaining, cancel}, return_when=asyncio.FIRST_COMPLETED)
        remaining.cancel()
    finally:
        cancel.cancel()
    # Scan again: a holder may have handed the output on (a child started during the grace).
    alive = await loop.run_in_executor(None, run.processes.holding, paths)
    for _ in range(KILL_ROUNDS):
        if not alive:
            return []
        reached = ctx.signaller.send(alive, Rung.KILL)
        run.debug(
            f"Sent SIGKILL to {len(reached)} process(es) still holding the output: "
            f"{describe(reached)}"
        )
        survivors = await wait_until_dead(alive, ctx.settings.kill_grace)
        if survivors:
            return survivors
        alive = await loop.run_in_executor(None, run.processes.holding, paths)
    return alive


def _abandon(
    run: ScriptRun, ctx: ScriptContext, pending: asyncio.Future | None, exit_code: int | None = None
) -> Outcome:
    """Best-effort kill of the process group, then stop waiting; the sweep that finds and
    quarantines survivors runs after the mutex is released.

    When the entry process had already exited (only stragglers were being waited for), its
    real exit code is kept, as Tentacle keeps it for a script that finished before the abandon.
    """
    _stop_waiting(run, ctx, pending)
    if exit_code is not None:
        return Outcome(exit_code, gave_up=True, abandoned=True)
    return Outcome(ExitCode.ABANDONED, ran_to_completion=False, gave_up=True, abandoned=True)


def _startup_deadline(run: ScriptRun, ctx: ScriptContext) -> asyncio.Future | None:
    if not startup_detection.is_guarded(run.workspace.directory):
        return None
    return asyncio.ensure_future(asyncio.sleep(ctx.settings.startup_timeout))


def _never_started(run: ScriptRun, ctx: ScriptContext, pending: asyncio.Future | None) -> Outcome:
    """The interpreter never reached the script: -47, and stop waiting for it (Tentacle §4.9)."""
    run.stderr(
        f"{ctx.shell.executable} process did not start within "
        f"{_duration(ctx.settings.startup_timeout)}. Script execution aborted."
    )
    _stop_waiting(run, ctx, pending)
    return Outcome(ExitCode.POWERSHELL_NEVER_STARTED, gave_up=True)


def _stop_waiting(run: ScriptRun, ctx: ScriptContext, pending: asyncio.Future | None) -> None:
    if pending is not None:
        pending.cancel()
    if run.processes is not None:
        ctx.signaller.signal_group(run.processes, Rung.KILL)


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


async def _sweep_survivors(run: ScriptRun, ctx: ScriptContext) -> None:
    """After giving up on a script: kill whatever of its tree is left; quarantine survivors."""
    if run.processes is None:
        return
    targets = await find_tree(run.processes)
    if ctx.signaller.enabled:
        ctx.signaller.send(targets, Rung.KILL)
        targets = await wait_until_dead(targets, ctx.settings.kill_grace)
    if targets:
        ctx.quarantine.add(run.ticket, run.state.task_id, run.workspace, targets)


def _detach(run: ScriptRun) -> None:
    """Agent shutdown: leave the process running and re-adoptable; just let go of the files."""
    run.detached = True
    with contextlib.suppress(Exception):
        run.flush()
        run.writer.close()


@functools.cache
def _user() -> str:
    """Asked once: the agent's account does not change while it runs."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
