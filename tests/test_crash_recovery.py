"""The agent is SIGKILLed mid-run at 20 points, and a new agent accounts for every ticket.

Each case runs `python -m tests.agent_process` (a real agent in its own process) over a fresh
home with the same plan: a FullIsolation holder with two FullIsolation waiters, a NoIsolation
reader and a late FullIsolation script queued behind it on one mutex; quick NoIsolation scripts;
one with large files (slow to prepare); a long one that writes output continuously; and one
that the agent cancels (its INT trap makes the cancel take a moment). The agent prints every
acknowledgement and every status it observes; the test kills it at the case's point, then opens
a new ScriptService over the same home and checks that:

- every state file parses, and recovery leaves no temp file behind;
- every acknowledged ticket is known, and every ticket reaches Complete with an exit code that
  fits what happened: finished under the dead agent -> the code it recorded (the script's real
  one); left queued -> -46 (re-adopted first if it was caught being spawned); left running ->
  -46 once it has gone (re-adopted or not, its exit status went to the dead agent); no state
  at all -> runs in the new agent when the "server" re-sends the start, with its real code;
- a script that ran is never reported as one that "never started";
- no script ran twice, even when the "server" re-sends every start after the restart;
- the log records the dead agent served keep their sequence numbers and texts, and the output
  of every script that ran is in its log exactly once, in order;
- the FullIsolation mutex was never held by two scripts at once across the restart;
- nothing is left running, and completing every ticket leaves an empty Work folder.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tentacle_manager.agent.process.tree import is_alive, processes_of_home
from tentacle_manager.agent.scripts.recovery import NEVER_STARTED
from tentacle_manager.agent.workspace.state import ScriptState, StateStore
from tentacle_manager.contracts import (
    CancelScriptCommand,
    CompleteScriptCommand,
    ExitCode,
    ProcessOutputSource,
    ProcessState,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ticket,
)
from tests.agent_process import _command
from tests.support import start_command, wait_complete

ROOT = Path(__file__).resolve().parents[1]
FULL = ScriptIsolationLevel.FULL_ISOLATION
NONE = ScriptIsolationLevel.NO_ISOLATION
MUTEX = "crash-m"
LONG_LINES = 100
CANCEL_TICKS = 30
BIG_FILES = (8, 1 << 20)

# Every script records that it ran ($1) and, on the shared mutex, when it held it ($2).
RAN = 'echo run >> "$1"\n'
SPAN_START = 'echo "start $EPOCHREALTIME" >> "$2"\n'
SPAN_END = 'echo "end $EPOCHREALTIME" >> "$2"\n'


@dataclass(frozen=True)
class Script:
    name: str
    body: str
    isolation: ScriptIsolationLevel
    mutex: str | None
    exit_codes: frozenset[int]  # what a run of it can end with


def _on_mutex(name: str, middle: str, code: int, isolation=FULL) -> Script:
    body = RAN + SPAN_START + middle + SPAN_END + f"exit {code}\n"
    return Script(name, body, isolation, MUTEX, frozenset({code}))


SCRIPTS = [
    _on_mutex("holder", 'for i in $(seq 1 12); do echo "holder $i"; sleep 0.05; done\n', 3),
    _on_mutex("waiter-1", 'echo "waiter-1 a"; sleep 0.15; echo "waiter-1 b"\n', 4),
    _on_mutex("reader-m", 'echo "reader-m"; sleep 0.05\n', 8, isolation=NONE),
    Script("quick-1", RAN + 'echo "quick-1"\nexit 7\n', NONE, None, frozenset({7})),
    _on_mutex("waiter-2", 'echo "waiter-2"\n', 5),
    Script(
        "bigfiles",
        RAN + 'n=$(ls big-*.bin | wc -l); echo "bigfiles $n"\nexit 6\n',
        NONE,
        None,
        frozenset({6}),
    ),
    Script(
        "long",
        RAN + f'for i in $(seq 1 {LONG_LINES}); do echo "long $i"; sleep 0.01; done\nexit 0\n',
        NONE,
        None,
        frozenset({0}),
    ),
    Script(
        "cancelme",
        RAN
        + "trap 'echo \"cancelme got INT\"; sleep 0.3; exit 9' INT\n"
        + f'for i in $(seq 1 {CANCEL_TICKS}); do echo "tick $i"; sleep 0.05; done\n'
        + 'echo "cancelme done"\nexit 0\n',
        NONE,
        None,
        frozenset({0, 9}),  # 9 when a cancel's SIGINT reached it, 0 when it ran out
    ),
    Script(
        "quick-2",
        RAN + 'echo "quick-2"; echo "quick-2 err" >&2\nexit 0\n',
        NONE,
        None,
        frozenset({0}),
    ),
    _on_mutex("late", 'echo "late"\n', 11),
]
BY_NAME = {script.name: script for script in SCRIPTS}
PAUSE = {"sleep": 0.05}  # lets the agent's event loop run between starts, as a real server would
STEPS: list[dict[str, Any]] = [
    {"start": "holder"},
    PAUSE,
    {"start": "waiter-1"},
    PAUSE,
    {"start": "reader-m"},
    {"start": "quick-1"},
    PAUSE,
    {"start": "waiter-2"},
    {"start": "bigfiles"},
    {"start": "long"},
    PAUSE,
    {"start": "cancelme"},
    {"start": "quick-2"},
    {"wait_text": ["cancelme", "tick 3"]},
    {"cancel": "cancelme"},
    {"sleep": 0.3},
    {"start": "late"},
]


def expected_output(name: str, exit_code: int) -> list[str]:
    """The script's own output lines for a run that ended with `exit_code`."""
    if name == "holder":
        return [f"holder {i}" for i in range(1, 13)]
    if name == "waiter-1":
        return ["waiter-1 a", "waiter-1 b"]
    if name == "bigfiles":
        return [f"bigfiles {BIG_FILES[0]}"]
    if name == "long":
        return [f"long {i}" for i in range(1, LONG_LINES + 1)]
    if name == "quick-2":
        return ["quick-2", "quick-2 err"]
    if name == "cancelme":
        if exit_code == 0:
            return [f"tick {i}" for i in range(1, CANCEL_TICKS + 1)] + ["cancelme done"]
        return []  # checked separately: ticks 1..n then the trap's line
    return [name]


def is_script_output(name: str, text: str) -> bool:
    if name == "cancelme":
        return bool(re.fullmatch(r"tick \d+|cancelme got INT|cancelme done", text))
    if name in ("holder", "long"):
        return bool(re.fullmatch(rf"{name} \d+", text))
    return text in expected_output(name, 0) or text.startswith(f"{name} ")


# --- kill points -----------------------------------------------------------------------------


Event = dict[str, Any]
Match = Callable[[list[Event]], bool]  # called with every event so far, the newest last


@dataclass(frozen=True)
class KillPoint:
    id: str
    match: Match | None  # None: kill as soon as the process is spawned
    delay: float = 0.0  # seconds after the match


def on(event: str, ticket_name: str | None = None) -> Match:
    return lambda events: (
        events[-1]["event"] == event
        and (ticket_name is None or events[-1]["ticket"] == ticket_name)
    )


def nth_ack(n: int) -> Match:
    return lambda events: (
        events[-1]["event"] == "ack" and sum(e["event"] == "ack" for e in events) == n
    )


def seen_text(name: str, text: str) -> Match:
    return lambda events: (
        events[-1]["event"] == "status"
        and events[-1]["ticket"] == name
        and any(text in t for t in events[-1]["texts"])
    )


def seen_state(name: str, state: ProcessState) -> Match:
    return lambda events: (
        events[-1]["event"] == "status"
        and events[-1]["ticket"] == name
        and events[-1]["state"] == state
    )


RUNNING, COMPLETE = ProcessState.RUNNING, ProcessState.COMPLETE
POINTS = [
    # before and during start-up
    KillPoint("at-spawn", None),
    KillPoint("service-open", on("open")),
    KillPoint("preparing-first", on("starting", "holder")),
    KillPoint("third-ack-reader-queued", nth_ack(3)),
    KillPoint("preparing-bigfiles", on("starting", "bigfiles")),
    KillPoint("all-initial-acks", on("ack", "quick-2")),
    # running, queued on the mutex, producing output
    KillPoint("holder-running", seen_state("holder", RUNNING)),
    KillPoint("holder-output", seen_text("holder", "holder 4")),
    KillPoint("long-output", seen_text("long", "long 10")),
    # cancel
    KillPoint("cancel-acknowledged", on("cancel-ack")),
    KillPoint("cancel-sigint-sent", seen_text("cancelme", "Sent SIGINT")),
    KillPoint("cancel-complete", seen_state("cancelme", COMPLETE)),
    # mutex hand-offs and later work
    KillPoint("holder-complete", seen_state("holder", COMPLETE)),
    KillPoint("waiter-1-running", seen_text("waiter-1", "waiter-1 a")),
    KillPoint("late-acknowledged", on("ack", "late")),
    KillPoint("waiter-2-complete", seen_state("waiter-2", COMPLETE)),
    # after completion
    KillPoint("all-complete", on("all-complete")),
    # plain delays after the service opened
    KillPoint("open+0.5s", on("open"), 0.5),
    KillPoint("open+1.0s", on("open"), 1.0),
    KillPoint("open+1.5s", on("open"), 1.5),
]
assert len(POINTS) == 20


# --- running and killing the agent -----------------------------------------------------------


def write_plan(path: Path, markers: Path, spans: Path) -> None:
    commands = {}
    for script in SCRIPTS:
        command = start_command(
            script.name,
            script.body,
            isolation=script.isolation,
            mutex=script.mutex,
            arguments=[str(markers / script.name), str(spans / script.name)],
        )
        commands[script.name] = command.to_wire()
    plan = {"commands": commands, "big_files": {"bigfiles": list(BIG_FILES)}, "steps": STEPS}
    path.write_text(json.dumps(plan))


async def run_and_kill(home: Path, plan: Path, point: KillPoint, log: Path) -> list[Event]:
    """Run the agent, SIGKILL it at `point`, and return every line it printed."""
    loop = asyncio.get_running_loop()
    with log.open("wb") as stderr:
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.agent_process",
            str(home),
            str(plan),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=64 << 20,
        )
    assert agent.stdout is not None
    events: list[Event] = []
    reached = point.match is None
    try:
        if point.match is not None:
            give_up = loop.time() + 20.0
            kill_at: float | None = None
            while loop.time() < (kill_at or give_up):
                remaining = (kill_at or give_up) - loop.time()
                try:
                    line = await asyncio.wait_for(agent.stdout.readline(), remaining)
                except TimeoutError:
                    break
                if not line:
                    raise AssertionError(f"the agent exited early:\n{log.read_text()}")
                event = json.loads(line)
                events.append(event)
                if kill_at is None and point.match(events):
                    reached = True
                    kill_at = loop.time() + point.delay
    finally:
        agent.send_signal(signal.SIGKILL)
        rest = await agent.stdout.read()
        await agent.wait()
    events += [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert reached, f"kill point {point.id} was never reached; agent printed {events[-5:]}"
    return events


@dataclass
class Seen:
    """What the killed agent acknowledged and observed."""

    acknowledged: set[str]
    cancelled: set[str]  # cancel_script returned for these
    states: dict[str, Event]  # last status event per ticket
    texts: dict[str, list[str]]  # texts of records 1..next, per ticket

    @staticmethod
    def of(events: list[Event]) -> Seen:
        seen = Seen(set(), set(), {}, {})
        for event in events:
            if event["event"] == "ack":
                seen.acknowledged.add(event["ticket"])
            elif event["event"] == "cancel-ack":
                seen.cancelled.add(event["ticket"])
            elif event["event"] == "status":
                seen.states[event["ticket"]] = event
                seen.texts.setdefault(event["ticket"], []).extend(event["texts"])
        return seen

    def sigint_reached(self, name: str) -> bool:
        return any(t.startswith("Sent SIGINT") for t in self.texts.get(name, []))


def check_state_files(work: Path, seen: Seen) -> dict[str, ScriptState]:
    """Every state file parses; a folder without one belongs to an unacknowledged ticket."""
    with_state = {}
    for folder in sorted(work.iterdir()) if work.is_dir() else []:
        store = StateStore(folder)
        if store.exists():
            state = store.load()
            assert state.ticket.lower() == folder.name
            with_state[folder.name] = state
        else:
            assert folder.name not in seen.acknowledged, f"{folder} lost its state file"
    return with_state


def texts_of(status: ScriptStatusResponse) -> list[str]:
    return [record.text for record in status.logs]


def spans(path: Path) -> tuple[float, float] | None:
    if not path.exists():
        return None
    values = dict(line.split(" ", 1) for line in path.read_text().splitlines())
    assert set(values) == {"start", "end"}, path.read_text()
    return float(values["start"]), float(values["end"])


def strays(home: Path) -> list[psutil.Process]:
    return [process for process in processes_of_home(home) if is_alive(process)]


# --- the test --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
async def test_killed_agent_accounts_for_every_ticket(point, make_service, tmp_path):
    home, markers, span_dir = tmp_path / "home", tmp_path / "markers", tmp_path / "spans"
    markers.mkdir()
    span_dir.mkdir()
    plan = tmp_path / "plan.json"
    write_plan(plan, markers, span_dir)
    events = await run_and_kill(home, plan, point, tmp_path / "agent.err")
    seen = Seen.of(events)
    work = home / "Work"

    # Before recovery: whatever the SIGKILL interrupted, every state file on disk parses.
    before = check_state_files(work, seen)
    assert seen.acknowledged <= set(before)

    service = await make_service(home)

    # Recovery removed the state temp file and left nothing unparseable.
    assert not list(work.glob("*/.scriptstate.json.tmp"))
    assert set(check_state_files(work, seen)) == set(before)

    # Every acknowledged ticket is known, and what the dead agent saw complete stays as it was.
    for name in seen.acknowledged:
        status = await service.get_status(ScriptStatusRequest(ticket=ticket(name)))
        assert status.exit_code != ExitCode.UNKNOWN_SCRIPT, name
        observed = seen.states.get(name)
        if observed and observed["state"] == COMPLETE:
            assert (status.state, status.exit_code) == (COMPLETE, observed["exit"]), name
    listed = {summary.ticket.task_id for summary in service.list_scripts()}
    assert seen.acknowledged <= listed

    # A server keeps sending cancel until the script completes, so the new agent gets it too.
    # It must: scriptstate.json does not record a cancel request, so a cancel the dead agent
    # acknowledged but had not yet acted on is otherwise lost and the script runs to its end.
    for name in seen.cancelled:
        await service.cancel_script(CancelScriptCommand(ticket=ticket(name)))
    for name in seen.acknowledged:
        await wait_complete(service, name, timeout=20)

    # The server re-sends every start after the restart: known tickets must not run again,
    # tickets never acknowledged (and without state) run now, once.
    for script in SCRIPTS:
        await service.start_script(_command(json.loads(plan.read_text()), script.name))
    finals = {s.name: await wait_complete(service, s.name, timeout=20) for s in SCRIPTS}

    for script in SCRIPTS:
        name = script.name
        final = finals[name]
        runs = (markers / name).read_text().splitlines() if (markers / name).exists() else []
        assert len(runs) <= 1, f"{name} ran {len(runs)} times"
        ran = bool(runs)
        code = final.exit_code

        # Exit codes that fit what happened. The agent that launched a script is the only one
        # that can learn its exit status: a script the dead agent had seen finish keeps its
        # code; one it left queued gets -46 and one it left running is concluded (at once or
        # when the re-adopted process exits) with -46; one without state ran in the new agent.
        earlier = before.get(name)
        real = set(script.exit_codes)
        if name in seen.cancelled or seen.sigint_reached(name):
            real = {9}
        if earlier is None:
            assert ran, f"{name} had no state, was re-sent, and did not run"
            assert code in script.exit_codes, f"{name} reports {code}; log: {texts_of(final)}"
        elif earlier.state is COMPLETE:
            assert ran, f"{name} was complete ({earlier.exit_code}) but never ran"
            assert code == earlier.exit_code, name
            assert code in real, f"{name} reports {code}; log: {texts_of(final)}"
        else:
            # Queued (or caught while being spawned) or running when the agent died.
            assert code == ExitCode.UNKNOWN_RESULT, f"{name} ({earlier.state!r}) reports {code}"
        if ran:
            assert NEVER_STARTED not in texts_of(final), f"{name} ran: {texts_of(final)}"
        observed = seen.states.get(name)
        if observed and observed["state"] == COMPLETE:
            assert code == observed["exit"], name

        # The log: contiguous sequence numbers; what the dead agent served is unchanged.
        texts = [record.text for record in final.logs]
        assert final.next_log_sequence == len(texts), name
        if name in seen.acknowledged:
            served = seen.texts.get(name, [])
            if observed:
                assert len(served) == observed["next"], name
            assert texts[: len(served)] == served, f"{name}: served records changed"

        # The script's own output is there exactly once, in order (none lost, none doubled).
        output = [t for t in texts if is_script_output(name, t)]
        if not ran:
            assert output == [], name
        elif name == "cancelme":
            # ticks 1..n, then either the natural end or the INT trap's line (twice when both
            # agents' SIGINTs landed)
            ticks = [t for t in output if t.startswith("tick ")]
            assert ticks == [f"tick {i}" for i in range(1, len(ticks) + 1)], output
            end = output[len(ticks) :]
            natural = len(ticks) == CANCEL_TICKS and end == ["cancelme done"]
            interrupted = len(ticks) >= 3 and end in (
                ["cancelme got INT"],
                ["cancelme got INT"] * 2,
            )
            assert natural or interrupted, output
            if code == 0:
                assert natural, output
            if code == 9 or name in seen.cancelled:
                assert interrupted, output
        else:
            # stdout and stderr are separate streams: order holds within each, not across them
            by_stream = {
                source: [
                    r.text
                    for r in final.logs
                    if r.source is source and is_script_output(name, r.text)
                ]
                for source in (ProcessOutputSource.STDOUT, ProcessOutputSource.STDERR)
            }
            expected = expected_output(name, code)
            assert sorted(output) == sorted(expected), f"{name}: {output}"
            for texts_of_stream in by_stream.values():
                assert texts_of_stream == [t for t in expected if t in texts_of_stream], name

    # The FullIsolation mutex was never shared, across the restart included.
    held = {s.name: spans(span_dir / s.name) for s in SCRIPTS if s.mutex == MUTEX}
    held = {name: span for name, span in held.items() if span is not None}
    for first in held:
        for second in held:
            if first < second and FULL in (BY_NAME[first].isolation, BY_NAME[second].isolation):
                (a_start, a_end), (b_start, b_end) = held[first], held[second]
                assert a_end <= b_start or b_end <= a_start, (
                    f"{first} {held[first]} and {second} {held[second]} held {MUTEX} together"
                )

    # Nothing is left running, and completing every ticket leaves no workspace behind.
    deadline = asyncio.get_running_loop().time() + 5
    while strays(home) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert strays(home) == []
    for script in SCRIPTS:
        await service.complete_script(CompleteScriptCommand(ticket=ticket(script.name)))
    assert list(work.iterdir()) == []
