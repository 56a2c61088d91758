"""The cancellation fire drill: prove, on this machine, that cancelling a script works.

It runs the nastiest ordinary script through the agent, exactly as a deployment would: one
that traps SIGINT and SIGTERM and carries on, starts a grandchild in a session of its own (out
of reach of a process-group signal), starts another that keeps the script's output open, and
writes files into its workspace. Then it cancels the script and grades each rung of what
must follow, with times: the signal reached the script, the whole tree died, the script
reached its final state, its workspace went on complete, and its isolation mutex is free for
the next script. Cancel problems are usually specific to a machine (an agent running as
another user, a security product, a kernel without pidfds), which is why the drill runs
against the real agent with its real settings and reports the ladder timings it used.

The tree is judged here as well as by the agent: every process that carries the script's
tracking tag, and every pid seen before the cancel, must be gone. So the drill must run on
the agent's machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import psutil

from tentacle_manager.agent.process.tree import TRACKING_VARIABLE, is_alive, tagged_processes
from tentacle_manager.client.agent_client import AgentRequestError
from tentacle_manager.client.protocol import ScriptServiceClient
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CompleteScriptCommand,
    ExitCode,
    LadderRung,
    ProcessOutput,
    ProcessState,
    ScriptIsolationLevel,
    ScriptProcessTree,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptTicket,
    StartScriptCommand,
    utc_now,
)
from tentacle_manager.diagnostics.stages import Outcome, StageResult

READY_MARK = "FIRE-DRILL-READY"
SIGNAL_MARK = "FIRE-DRILL-SIGNAL"
MUTEX_MARK = "FIRE-DRILL-MUTEX-ACQUIRED"
FILES_FOLDER = "fire-drill-files"
FILE_COUNT = 20
TASK_ID = "FireDrill"
SIGKILL_EXIT = 128 + 9


def drill_script() -> str:
    """The script under test. Its grandchildren ignore SIGINT and SIGTERM too (an ignored
    signal stays ignored across exec), so only the ladder's last rung can end the tree."""
    return f"""\
trap 'echo "{SIGNAL_MARK} INT"' INT
trap 'echo "{SIGNAL_MARK} TERM"' TERM
mkdir -p {FILES_FOLDER}
i=1
while [ $i -le {FILE_COUNT} ]; do
  echo "fire drill file $i" > "{FILES_FOLDER}/file-$i.txt"
  i=$((i + 1))
done
session=none
if command -v setsid >/dev/null 2>&1; then
  setsid sh -c 'trap "" INT TERM; exec sleep 600' </dev/null >/dev/null 2>&1 &
  session=$!
fi
( trap '' INT TERM; exec sleep 600 ) &
holder=$!
echo "{READY_MARK} script=$$ session=$session holder=$holder tag=${TRACKING_VARIABLE}"
while :; do sleep 0.2 & wait $!; done
"""


class DrillStep(StrEnum):
    STARTED = "started"
    SIGNAL_DELIVERED = "signal-delivered"
    TREE_KILLED = "tree-killed"
    PIPES_RELEASED = "pipes-released"
    WORKSPACE_DELETED = "workspace-deleted"
    MUTEX_FREED = "mutex-freed"


TITLES = {
    DrillStep.STARTED: "Drill script started its grandchildren and wrote its files",
    DrillStep.SIGNAL_DELIVERED: "Signal delivered",
    DrillStep.TREE_KILLED: "Process tree killed",
    DrillStep.PIPES_RELEASED: "Output released: the script reached its final state",
    DrillStep.WORKSPACE_DELETED: "Workspace deleted on complete",
    DrillStep.MUTEX_FREED: "Isolation mutex freed",
}


class FireDrillAgent(ScriptServiceClient, Protocol):
    """What the drill needs of an agent: the script service, and the process tree with the
    cancel ladder that the admin API reports (`HttpsAgent` has both)."""

    async def script_processes(self, script: ScriptTicket) -> ScriptProcessTree: ...


@dataclass(frozen=True)
class DrillOptions:
    ready_timeout: float = 30.0  # for the script to start its grandchildren
    # How long a cancel may take before the drill calls it stuck. The agent's default ladder
    # (7.5 s + 2.5 s, then SIGKILL) plus the wait for output holders needs about 17 s.
    cancel_timeout: float = 120.0
    mutex_timeout: float = 10.0  # how long the second script waits for the mutex
    poll_interval: float = 0.05


@dataclass(frozen=True)
class DrillReport:
    ticket: str
    rungs: tuple[StageResult, ...]
    ladder: tuple[LadderRung, ...]
    cancel_seconds: float | None  # from the cancel to the script's final state

    @property
    def passed(self) -> bool:
        return bool(self.rungs) and all(r.outcome is Outcome.PASSED for r in self.rungs)

    @property
    def verdict(self) -> str:
        if self.passed and self.cancel_seconds is not None:
            return (
                "Cancel works on this machine: the script and all its grandchildren were "
                f"stopped {self.cancel_seconds:.1f} s after the cancel "
                f"({describe_ladder(self.ladder)}), its workspace was deleted and its mutex freed."
            )
        failed = [r for r in self.rungs if r.outcome is Outcome.FAILED]
        if failed and failed[0].stage == DrillStep.STARTED:
            remedy = f" {failed[0].remedy}" if failed[0].remedy else ""
            return f"The fire drill could not run on this machine: {failed[0].detail}.{remedy}"
        if not failed:
            return "Cancel could not be fully checked on this machine: " + "; ".join(
                f"{r.title}: {r.detail}" for r in self.rungs if r.outcome is Outcome.SKIPPED
            )
        remedy = f" {failed[0].remedy}" if failed[0].remedy else ""
        return (
            "Cancel does NOT fully work on this machine: "
            + ", ".join(r.title.lower() for r in failed)
            + f" failed.{remedy}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "passed": self.passed,
            "verdict": self.verdict,
            "cancel_seconds": self.cancel_seconds,
            "ladder": [rung.to_wire() for rung in self.ladder],
            "rungs": [rung.to_json() for rung in self.rungs],
        }


def describe_ladder(ladder: tuple[LadderRung, ...] | list[LadderRung]) -> str:
    """'SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s later': the timings the agent used."""
    if not ladder:
        return "no signal was sent"
    parts = [ladder[0].signal]
    parts += [
        f"{rung.signal} {before.waited_seconds:g} s later"
        for before, rung in itertools.pairwise(ladder)
    ]
    return ", ".join(parts)


async def run_fire_drill(
    agent: FireDrillAgent,
    work_root: Path,
    options: DrillOptions = DrillOptions(),
    on_rung: Callable[[StageResult], None] = lambda result: None,
    on_note: Callable[[str], None] = lambda note: None,
) -> DrillReport:
    """Run the drill against `agent`, whose script workspaces are under `work_root`.

    Each rung is passed to `on_rung` once graded, and `on_note` hears what the drill is
    waiting for. Whatever happens (a failure, the caller cancelling), the drill's scripts
    are abandoned if still running and completed, so it leaves nothing behind.
    """
    return await _Drill(agent, work_root, options, on_rung, on_note).run()


@dataclass
class _Ready:
    """The script as it was just before the cancel."""

    script: int
    session: int | None
    holder: int
    tag: str
    seconds: float
    processes: dict[int, float] = field(default_factory=dict)  # pid -> create time
    tagged: int = 0  # how many of them the tag scan found
    files: int = 0  # files found in the workspace


class _Drill:
    def __init__(
        self,
        agent: FireDrillAgent,
        work_root: Path,
        options: DrillOptions,
        on_rung: Callable[[StageResult], None],
        on_note: Callable[[str], None],
    ) -> None:
        key = uuid.uuid4().hex[:12]
        self.agent = agent
        self.work_root = work_root
        self.options = options
        self.on_rung = on_rung
        self.on_note = on_note
        self.ticket = ScriptTicket(task_id=f"fire-drill-{key}")
        self.probe = ScriptTicket(task_id=f"fire-drill-{key}-mutex")
        self.mutex = f"fire-drill-{key}"
        self.results: list[StageResult] = []
        self.open_tickets: list[ScriptTicket] = []
        self.logs: list[ProcessOutput] = []
        self.next_sequence = 0
        self.ladder: list[LadderRung] = []
        self.cancel_seconds: float | None = None
        self.exit_code = 0

    @property
    def workspace(self) -> Path:
        return self.work_root / self.ticket.key

    async def run(self) -> DrillReport:
        try:
            await self._drill()
        except (ConnectionError, AgentRequestError) as error:
            self._fail_remaining(f"the agent could not be used: {error}")
        finally:
            await self._clean_up()
        return DrillReport(
            self.ticket.task_id, tuple(self.results), tuple(self.ladder), self.cancel_seconds
        )

    async def _drill(self) -> None:
        if os.name != "posix":
            self._grade(
                DrillStep.STARTED,
                Outcome.FAILED,
                0.0,
                "the fire drill's script is written for bash; this machine runs scripts in "
                "PowerShell, which the drill does not cover yet",
            )
            self._skip_remaining("the drill cannot run on this machine")
            return
        ready = await self._start()
        if ready is None:
            self._skip_remaining("the drill script did not get ready")
            return
        cancelled_at, cancelled_wall = await self._cancel()
        ended = await self._wait_for_end(cancelled_at, cancelled_wall)
        self.ladder = list((await self.agent.script_processes(self.ticket)).cancel_ladder)
        self._grade_signal(ready, cancelled_wall)
        survivors = await asyncio.to_thread(_survivors, ready)
        self._grade_tree(ready, survivors, cancelled_wall)
        if ended is None:
            self._grade(
                DrillStep.PIPES_RELEASED,
                Outcome.FAILED,
                self.options.cancel_timeout,
                f"the script had not reached its final state {self.options.cancel_timeout:g} s "
                "after the cancel",
                "The agent is still waiting for the script's processes, or for its output to "
                "be released; the drill abandons it to free its mutex. Look in the agent's "
                "log for the ladder's lines.",
            )
            self._skip_remaining("the script did not end after the cancel, so it was abandoned")
            return
        self.cancel_seconds = ended
        self._grade_pipes(ended)
        await self._complete_and_grade_workspace(ready)
        await self._grade_mutex()

    # --- phases ----------------------------------------------------------------------------------

    async def _start(self) -> _Ready | None:
        command = StartScriptCommand(
            script_ticket=self.ticket,
            task_id=TASK_ID,
            script_body=drill_script(),
            isolation=ScriptIsolationLevel.FULL_ISOLATION,
            isolation_mutex_name=self.mutex,
            script_isolation_mutex_timeout=timedelta(seconds=self.options.mutex_timeout),
        )
        self.on_note("Starting the drill script through the agent")
        started = time.monotonic()
        self.open_tickets.append(self.ticket)
        status = self._take(await self.agent.start_script(command))
        while (line := self._find(READY_MARK)) is None:
            if status.state is ProcessState.COMPLETE:
                self._grade(
                    DrillStep.STARTED,
                    Outcome.FAILED,
                    time.monotonic() - started,
                    f"the drill script ended (exit code {status.exit_code}) before it was "
                    f"ready: {self._last_lines()}",
                    "Check that bash runs scripts on this agent: `tentacle run-script --demo`.",
                )
                return None
            if time.monotonic() - started > self.options.ready_timeout:
                self._grade(
                    DrillStep.STARTED,
                    Outcome.FAILED,
                    time.monotonic() - started,
                    f"the drill script was not ready {self.options.ready_timeout:g} s after it "
                    f"was started: {self._last_lines()}",
                    "Scripts start slowly here: look at the agent's load and its log, and at "
                    "security products that inspect every new process.",
                )
                return None
            await asyncio.sleep(self.options.poll_interval)
            status = await self._poll()
        ready = _parse_ready(line.text, time.monotonic() - started)
        tree = await self.agent.script_processes(self.ticket)
        await asyncio.to_thread(_observe, ready, [p.pid for p in tree.processes], self.workspace)
        self._grade_started(ready)
        return ready

    async def _cancel(self) -> tuple[float, datetime]:
        self.on_note(
            "Cancelling: the script ignores SIGINT and SIGTERM, so only the agent's last rung "
            "(SIGKILL) can stop it; this takes as long as the agent's cancel ladder"
        )
        wall, started = utc_now(), time.monotonic()
        command = CancelScriptCommand(ticket=self.ticket, last_log_sequence=self.next_sequence)
        self._take(await self.agent.cancel_script(command))
        return started, wall

    async def _wait_for_end(self, cancelled_at: float, cancelled_wall: datetime) -> float | None:
        """Seconds from the cancel to the final state, or None if it never came."""
        told = 0
        while True:
            status = await self._poll()
            signals = self._all(SIGNAL_MARK)
            for record in signals[told:]:
                offset = (record.occurred - cancelled_wall).total_seconds()
                self.on_note(
                    f"The script received SIG{record.text.split()[-1]} {offset:.2f} s after "
                    "the cancel, and ignored it"
                )
            told = len(signals)
            if status.state is ProcessState.COMPLETE:
                return time.monotonic() - cancelled_at
            if time.monotonic() - cancelled_at > self.options.cancel_timeout:
                return None
            await asyncio.sleep(self.options.poll_interval)

    async def _complete_and_grade_workspace(self, ready: _Ready) -> None:
        started = time.monotonic()
        await self.agent.complete_script(CompleteScriptCommand(ticket=self.ticket))
        self.open_tickets.remove(self.ticket)
        seconds = time.monotonic() - started
        if ready.files == 0:
            self._grade(
                DrillStep.WORKSPACE_DELETED,
                Outcome.SKIPPED,
                seconds,
                f"the script's files were not found under {self.workspace} before the cancel, "
                "so the deletion cannot be checked from here (is this the agent's home?)",
            )
            return
        left = await asyncio.to_thread(_files_under, self.workspace)
        if left is not None:
            self._grade(
                DrillStep.WORKSPACE_DELETED,
                Outcome.FAILED,
                seconds,
                f"the workspace {self.workspace} still exists after complete ({left} files left)",
                "Something keeps files in it open or locked, most often an anti-virus scanner: "
                "exclude <home>/Work from real-time scanning, then run the drill again.",
            )
            return
        self._grade(
            DrillStep.WORKSPACE_DELETED,
            Outcome.PASSED,
            seconds,
            f"{self.workspace} and the {ready.files} files the script wrote were deleted "
            f"{seconds:.3f} s after complete was sent",
        )

    async def _grade_mutex(self) -> None:
        timeout = self.options.mutex_timeout
        command = StartScriptCommand(
            script_ticket=self.probe,
            task_id=TASK_ID,
            script_body=f'echo "{MUTEX_MARK}"',
            isolation=ScriptIsolationLevel.FULL_ISOLATION,
            isolation_mutex_name=self.mutex,
            script_isolation_mutex_timeout=timedelta(seconds=timeout),
        )
        self.on_note(f"Starting a second script on the drill's mutex {self.mutex}")
        started = time.monotonic()
        self.open_tickets.append(self.probe)
        status = await self.agent.start_script(command)
        deadline = started + timeout + self.options.ready_timeout
        while status.state is not ProcessState.COMPLETE and time.monotonic() < deadline:
            await asyncio.sleep(self.options.poll_interval)
            status = await self.agent.get_status(ScriptStatusRequest(ticket=self.probe))
        seconds = time.monotonic() - started
        ran = any(r.text == MUTEX_MARK for r in status.logs)
        if status.exit_code == ExitCode.TIMEOUT:
            self._grade(
                DrillStep.MUTEX_FREED,
                Outcome.FAILED,
                seconds,
                f"a second script waited {timeout:g} s for the mutex {self.mutex} and gave up: "
                "the cancelled script still holds it",
                "The agent did not release the mutex when the cancelled script ended: look "
                "in its log, and abandon stuck scripts (`tentacle abandon --ticket=...`).",
            )
        elif status.state is not ProcessState.COMPLETE or status.exit_code != 0 or not ran:
            self._grade(
                DrillStep.MUTEX_FREED,
                Outcome.FAILED,
                seconds,
                f"a second script on the mutex {self.mutex} did not run to the end "
                f"(state {status.state.name.lower()}, exit code {status.exit_code})",
                "Look at the agent's scripts and mutexes (`tentacle mutexes`).",
            )
        else:
            self._grade(
                DrillStep.MUTEX_FREED,
                Outcome.PASSED,
                seconds,
                f"a second script acquired the mutex {self.mutex} and ran to the end in "
                f"{seconds:.3f} s",
            )
        await self.agent.complete_script(CompleteScriptCommand(ticket=self.probe))
        self.open_tickets.remove(self.probe)

    async def _clean_up(self) -> None:
        """Leave nothing running: abandon kills what it can and frees the mutex at once."""
        for script in list(self.open_tickets):
            try:
                await self.agent.abandon_script(AbandonScriptCommand(ticket=script))
                await self.agent.complete_script(CompleteScriptCommand(ticket=script))
            except (ConnectionError, AgentRequestError) as error:
                self.on_note(
                    f"Could not clean up the drill's script {script}: {error}. Abandon it with "
                    f"`tentacle abandon --ticket={script}`."
                )
            else:
                self.on_note(f"Abandoned and completed the drill's script {script}")
            self.open_tickets.remove(script)

    # --- grading ---------------------------------------------------------------------------------

    def _grade_started(self, ready: _Ready) -> None:
        notes = []
        if ready.session is None:
            notes.append("setsid is missing, so no grandchild in a session of its own was started")
        if ready.tagged == 0:
            notes.append(
                f"no process carrying the agent's {TRACKING_VARIABLE} tag could be read (the "
                "agent may run as another user), so the tree is checked by pid alone"
            )
        if ready.files == 0:
            notes.append(f"the script's files were not found under {self.workspace}")
        grandchildren = f"{ready.holder} holding the output"
        if ready.session is not None:
            grandchildren = f"{ready.session} in a session of its own, {grandchildren}"
        self._grade(
            DrillStep.STARTED,
            Outcome.PASSED,
            ready.seconds,
            f"script pid {ready.script}; grandchildren {grandchildren}; "
            f"{len(ready.processes)} processes before the cancel ({ready.tagged} found by the "
            f"agent's tag); {ready.files} files written in {self.workspace}"
            + "".join(f"; note: {note}" for note in notes),
            facts={
                "script_pid": str(ready.script),
                "session_pid": str(ready.session or ""),
                "holder_pid": str(ready.holder),
                "tracking_tag": ready.tag,
            },
        )

    def _grade_signal(self, ready: _Ready, cancelled_wall: datetime) -> None:
        remedy = (
            "Run the agent as root or as the user its scripts run as, and check whether a "
            "security product blocks signals to scripts."
        )
        if not self.ladder:
            self._grade(
                DrillStep.SIGNAL_DELIVERED,
                Outcome.FAILED,
                0.0,
                "the agent reports no rung of a cancel ladder for the script",
                remedy,
            )
            return
        first = self.ladder[0]
        sent = _sent_after(first, cancelled_wall)
        received = self._all(f"{SIGNAL_MARK} INT")
        if ready.script not in first.signalled:
            detail = (
                f"the agent sent {first.signal} to {_pids(first.signalled)} but not to the "
                f"script ({ready.script})"
            )
        elif not received:
            detail = (
                f"the agent reports sending {first.signal} to {_pids(first.signalled)}, but "
                "the script's trap never ran"
            )
        else:
            trapped = (received[0].occurred - cancelled_wall).total_seconds()
            self._grade(
                DrillStep.SIGNAL_DELIVERED,
                Outcome.PASSED,
                sent,
                f"{first.signal} reached {len(first.signalled)} process(es) {sent:.3f} s "
                f"after the cancel; the script's own trap confirmed it {max(trapped, 0.0):.3f} s "
                f"after the cancel; the ladder: {describe_ladder(self.ladder)}",
                facts={"signal": first.signal, "signalled": _pids(first.signalled)},
            )
            return
        self._grade(DrillStep.SIGNAL_DELIVERED, Outcome.FAILED, sent, detail, remedy)

    def _grade_tree(
        self, ready: _Ready, survivors: list[tuple[int, str]], cancelled_wall: datetime
    ) -> None:
        rungs = "; ".join(
            f"{rung.signal}: {len(rung.signalled)} signalled, {len(rung.alive_after)} alive "
            f"{rung.waited_seconds:g} s later"
            for rung in self.ladder
        )
        if survivors:
            described = ", ".join(f"{pid} ({name})" for pid, name in survivors)
            self._grade(
                DrillStep.TREE_KILLED,
                Outcome.FAILED,
                0.0,
                f"{len(survivors)} process(es) of the script are still alive after the cancel: "
                f"{described} (ladder: {rungs or 'none'})",
                "A process that outlives SIGKILL is stuck in the kernel or protected by a "
                "security product; one the ladder never signalled escaped the agent's tracking "
                "(run the agent as root or as its scripts' user, so it can read their tags).",
            )
            return
        # A rung is recorded when its wait ends: the last one's time is when none was left.
        last = self.ladder[-1] if self.ladder else None
        seconds = 0.0 if last is None else (last.at - cancelled_wall).total_seconds()
        grandchildren = f"the one holding the output ({ready.holder})"
        if ready.session is not None:
            grandchildren = (
                f"the grandchild in its own session ({ready.session}) and {grandchildren}"
            )
        self._grade(
            DrillStep.TREE_KILLED,
            Outcome.PASSED,
            max(seconds, 0.0),
            f"all {len(ready.processes)} processes of the script are gone, including "
            f"{grandchildren}; {rungs}",
        )

    def _grade_pipes(self, ended: float) -> None:
        how = " (killed by SIGKILL)" if self.exit_code == SIGKILL_EXIT else ""
        self._grade(
            DrillStep.PIPES_RELEASED,
            Outcome.PASSED,
            ended,
            f"the script reached its final state {ended:.3f} s after the cancel, exit code "
            f"{self.exit_code}{how}; the grandchild holding its output did not keep the agent "
            "waiting",
        )

    # --- plumbing --------------------------------------------------------------------------------

    def _grade(
        self,
        step: DrillStep,
        outcome: Outcome,
        seconds: float,
        detail: str,
        remedy: str | None = None,
        facts: dict[str, str] | None = None,
    ) -> None:
        result = StageResult(
            step.value, TITLES[step], outcome, seconds, detail, remedy, facts or {}
        )
        self.results.append(result)
        self.on_rung(result)

    def _skip_remaining(self, why: str) -> None:
        for step in self._ungraded():
            self._grade(step, Outcome.SKIPPED, 0.0, f"not tried: {why}")

    def _fail_remaining(self, why: str) -> None:
        remaining = self._ungraded()
        if remaining:
            self._grade(
                remaining[0],
                Outcome.FAILED,
                0.0,
                why,
                "Check the connection to the agent first: `tentacle check-connectivity`.",
            )
            self._skip_remaining("the agent could not be used")

    def _ungraded(self) -> list[DrillStep]:
        graded = {result.stage for result in self.results}
        return [step for step in DrillStep if step.value not in graded]

    async def _poll(self) -> ScriptStatusResponse:
        request = ScriptStatusRequest(ticket=self.ticket, last_log_sequence=self.next_sequence)
        return self._take(await self.agent.get_status(request))

    def _take(self, status: ScriptStatusResponse) -> ScriptStatusResponse:
        """Keep the drill script's output: each answer carries what came after the last."""
        self.logs += status.logs
        self.next_sequence = max(self.next_sequence, status.next_log_sequence)
        self.exit_code = status.exit_code
        return status

    def _find(self, prefix: str) -> ProcessOutput | None:
        return next((r for r in self.logs if r.text.startswith(prefix)), None)

    def _all(self, prefix: str) -> list[ProcessOutput]:
        return [r for r in self.logs if r.text.startswith(prefix)]

    def _last_lines(self) -> str:
        return " | ".join(r.text for r in self.logs[-5:]) or "no output"


def _parse_ready(text: str, seconds: float) -> _Ready:
    values = dict(part.split("=", 1) for part in text.split()[1:] if "=" in part)
    session = values.get("session", "none")
    return _Ready(
        script=int(values["script"]),
        session=None if session == "none" else int(session),
        holder=int(values["holder"]),
        tag=values.get("tag", ""),
        seconds=seconds,
    )


def _observe(ready: _Ready, reported: list[int], workspace: Path) -> None:
    """Blocking (psutil, files): what the script left on this machine before the cancel."""
    for process, environ in tagged_processes():
        if ready.tag and environ.get(TRACKING_VARIABLE) == ready.tag:
            with contextlib.suppress(psutil.Error):
                ready.processes[process.pid] = process.create_time()
                ready.tagged += 1
    known = [ready.script, ready.holder, *reported]
    if ready.session is not None:
        known.append(ready.session)
    for pid in known:
        if pid not in ready.processes:
            with contextlib.suppress(psutil.Error):
                ready.processes[pid] = psutil.Process(pid).create_time()
    ready.files = _files_under(workspace / FILES_FOLDER) or 0


def _survivors(ready: _Ready) -> list[tuple[int, str]]:
    """Blocking: every process of the script still alive, by tag or by a pid seen before
    (the same process: a reused pid has another create time)."""
    alive: dict[int, str] = {}
    for process, environ in tagged_processes():
        if ready.tag and environ.get(TRACKING_VARIABLE) == ready.tag and is_alive(process):
            alive[process.pid] = _name(process)
    for pid, created in ready.processes.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - created) < 0.01 and is_alive(process):
                alive[pid] = _name(process)
    return sorted(alive.items())


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return "?"


def _files_under(folder: Path) -> int | None:
    """How many files are under `folder`, or None when it does not exist."""
    if not folder.exists():
        return None
    return sum(1 for path in folder.rglob("*") if path.is_file())


def _sent_after(rung: LadderRung, cancelled_wall: datetime) -> float:
    """Seconds from the cancel to the rung's signal: a rung is recorded when its wait ends."""
    return max((rung.at - cancelled_wall).total_seconds() - rung.waited_seconds, 0.0)


def _pids(pids: list[int]) -> str:
    return ", ".join(str(pid) for pid in pids) or "no process"
