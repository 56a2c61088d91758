"""Script verbs: run-script, list-scripts, cancel, abandon, mutexes.

They talk to the instance's agent over mutual TLS with the local admin certificate, exactly as
a remote orchestrator would. `run-script --home DIR` instead runs an embedded script service
in this process, for trying things out without an installed agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings
from tentacle_manager.cli.verb import CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.executor import ScriptExecutor, ScriptOutcome
from tentacle_manager.client.in_process import InProcessAgent
from tentacle_manager.client.local import local_agent
from tentacle_manager.client.protocol import ScriptServiceClient
from tentacle_manager.client.task import Step, problems_of
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    ContractError,
    MutexSnapshot,
    ProcessOutput,
    ProcessOutputSource,
    ScriptList,
    ScriptTicket,
    StartScriptCommand,
    ticket,
)

T = TypeVar("T")

DEMO_SCRIPT = """\
echo "Hello from the Tentacle Manager script service."
echo "Working directory: $(pwd)"
for step in 1 2 3; do echo "step $step of 3"; sleep 0.3; done
echo "a line on stderr" >&2
echo "Done."
"""


# --- run-script ----------------------------------------------------------------------------------


def _run_script_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body", help="The script body")
    parser.add_argument("--file", help="A file holding the script body")
    parser.add_argument("--demo", action="store_true", help="Run a short demonstration script")
    parser.add_argument("--isolation", default="full", help="Isolation level: full or none")
    parser.add_argument("--mutex", help="Isolation mutex name (default RunningScript)")
    parser.add_argument(
        "--timeout", help="How long to wait for the mutex (TimeSpan or seconds; default forever)"
    )
    parser.add_argument(
        "--wait", type=float, help="Seconds the agent holds the first answer for a short script"
    )
    parser.add_argument("--task-id", default="ServerTasks-local", help="Task id to show")
    parser.add_argument("--home", help="Run in an embedded script service over this home folder")
    parser.add_argument("arguments", nargs="*", help="Arguments passed to the script")


def _run_script(args: argparse.Namespace, console: Console) -> int:
    return asyncio.run(_execute(args, _command(args), console))


def _command(args: argparse.Namespace) -> StartScriptCommand:
    """The request, validated by the same task model as a step of `run-task`."""
    values: dict[str, Any] = {"isolation": args.isolation, "mutex": args.mutex}
    if args.timeout is not None:
        values["mutex_timeout"] = args.timeout
    try:
        step = Step(name="run-script", agents=["local"], script=_script_body(args), **values)
    except ValidationError as error:
        problems = "; ".join(
            f"--{path.replace('_', '-')}: {rule}" for path, rule in problems_of(error).items()
        )
        raise CliError(f"Invalid script request: {problems}") from None
    command = step.start_command(ticket(uuid.uuid4().hex), args.task_id)
    wait = None if args.wait is None else timedelta(seconds=args.wait)
    return command.model_copy(
        update={"arguments": list(args.arguments), "duration_to_wait_for_script_to_finish": wait}
    )


def _script_body(args: argparse.Namespace) -> str:
    given = [name for name in ("body", "file", "demo") if getattr(args, name)]
    if len(given) != 1:
        raise CliError("Give exactly one of --body, --file or --demo.")
    if args.demo:
        return DEMO_SCRIPT
    if args.file:
        try:
            return Path(args.file).read_text()
        except OSError as error:
            raise CliError(f"--file: cannot read {args.file}: {error.strerror}.") from None
    return str(args.body)


async def _execute(args: argparse.Namespace, command: StartScriptCommand, console: Console) -> int:
    async with _client(args) as client:
        cancel = asyncio.Event()
        presses = _interrupts(client, command.script_ticket, cancel, console)
        try:
            result = await ScriptExecutor(client).run(command, cancel, on_output=_printer(console))
        finally:
            presses.cancel()
    console.error(f"exit code {result.exit_code} ({result.outcome.value})")
    return 0 if result.outcome is ScriptOutcome.SUCCEEDED else 1


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[ScriptServiceClient]:
    if args.home:
        settings = ScriptServiceSettings(minimum_free_disk_bytes=0)
        async with ScriptService(Path(args.home), settings) as service:
            yield InProcessAgent(service)
    else:
        async with local_agent(open_instance(args)) as agent:
            yield agent


def _interrupts(
    client: ScriptServiceClient, script: ScriptTicket, cancel: asyncio.Event, console: Console
) -> asyncio.Task[None]:
    """The first Ctrl-C cancels through the ladder; the second abandons."""
    presses: asyncio.Queue[None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, presses.put_nowait, None)

    async def escalate() -> None:
        await presses.get()
        console.error("cancelling (Ctrl-C again to abandon)...")
        cancel.set()
        await presses.get()
        console.error("abandoning...")
        await client.abandon_script(AbandonScriptCommand(ticket=script))

    return loop.create_task(escalate())


def _printer(console: Console) -> Callable[[ProcessOutput], None]:
    def show(record: ProcessOutput) -> None:
        if record.source is ProcessOutputSource.STDERR:
            console.error(record.text)
        elif record.source is ProcessOutputSource.DEBUG:
            console.error(f"[debug] {record.text}")
        else:
            console.payload(record.text)

    return show


# --- list-scripts, cancel, abandon, mutexes ------------------------------------------------------


def _list_scripts(args: argparse.Namespace, console: Console) -> int:
    scripts: ScriptList = asyncio.run(_with_agent(args, lambda agent: agent.list_scripts()))
    if wants_json(args):
        console.payload(scripts.model_dump_json(by_alias=True, indent=2))
        return 0
    if not scripts.scripts:
        console.payload("No scripts.")
    for script in scripts.scripts:
        console.payload(
            f"{script.ticket.task_id}  {script.phase.value:<10}  exit {script.exit_code:<4}  "
            f"pid {script.pid or '-':<7}  mutex {script.mutex_name}  task {script.task_id}  "
            f"since {script.created:%Y-%m-%d %H:%M:%S}"
        )
    for entry in scripts.quarantined:
        pids = ", ".join(str(p.pid) for p in entry.processes)
        console.payload(
            f"QUARANTINED {entry.ticket.task_id}: processes {pids} survived abandon; "
            f"{entry.kill_attempts} kill attempts since {entry.since:%Y-%m-%d %H:%M:%S}"
        )
    return 0


def _ticket_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ticket", required=True, help="The script ticket (see list-scripts)")


def _cancel(args: argparse.Namespace, console: Console) -> int:
    command = CancelScriptCommand(ticket=_ticket(args))
    status = asyncio.run(_with_agent(args, lambda agent: agent.cancel_script(command)))
    console.info(f"Cancel sent to {status.ticket.task_id}: state {status.state.name}")
    return 0


def _abandon(args: argparse.Namespace, console: Console) -> int:
    command = AbandonScriptCommand(ticket=_ticket(args))
    status = asyncio.run(_with_agent(args, lambda agent: agent.abandon_script(command)))
    console.info(
        f"{status.ticket.task_id} is {status.state.name.lower()} with exit code "
        f"{status.exit_code}; its mutex is free."
    )
    return 0


def _ticket(args: argparse.Namespace) -> ScriptTicket:
    try:
        return ticket(args.ticket)
    except (ValueError, ContractError) as error:
        raise CliError(f"--ticket: {error}") from None


def _mutex_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true", help="Keep printing changes")


def _mutexes(args: argparse.Namespace, console: Console) -> int:
    if args.follow:
        return asyncio.run(_follow_mutexes(args, console))
    snapshot: MutexSnapshot = asyncio.run(_with_agent(args, lambda agent: agent.mutexes()))
    if wants_json(args):
        console.payload(snapshot.model_dump_json(by_alias=True, indent=2))
        return 0
    if not snapshot.mutexes:
        console.payload("No mutex is held or awaited.")
    for mutex in snapshot.mutexes:
        console.payload(f"{mutex.name}")
        for party in mutex.holders:
            console.payload(
                f"  held by   {party.task_id} ({party.ticket.task_id}, "
                f"{party.level.name}) since {party.since:%H:%M:%S}"
            )
        for position, party in enumerate(mutex.waiters, 1):
            console.payload(
                f"  waiting {position}. {party.task_id} ({party.ticket.task_id}, "
                f"{party.level.name}) since {party.since:%H:%M:%S}"
            )
    return 0


async def _follow_mutexes(args: argparse.Namespace, console: Console) -> int:
    async with local_agent(open_instance(args)) as agent:
        async for change in agent.mutex_events():
            console.payload(change.to_json())
    return 0


async def _with_agent(args: argparse.Namespace, call: Callable[[HttpsAgent], Awaitable[T]]) -> T:
    async with local_agent(open_instance(args)) as agent:
        return await call(agent)


def _no_options(parser: argparse.ArgumentParser) -> None:
    """The verb takes only --instance, --config and --format."""


VERBS = [
    Verb(
        "run-script",
        "Runs a script through the agent and streams its output",
        _run_script_options,
        _run_script,
        instance_bound=True,
    ),
    Verb(
        "list-scripts",
        "Lists the agent's scripts: running, queued, finished, quarantined",
        _no_options,
        _list_scripts,
        instance_bound=True,
        read_only=True,
    ),
    Verb(
        "cancel",
        "Cancels a script (interrupt, terminate, then kill its process tree)",
        _ticket_options,
        _cancel,
        instance_bound=True,
    ),
    Verb(
        "abandon",
        "Stops waiting for a script that will not die and frees its mutex",
        _ticket_options,
        _abandon,
        instance_bound=True,
    ),
    Verb(
        "mutexes",
        "Shows who holds and who waits for each isolation mutex",
        _mutex_options,
        _mutexes,
        instance_bound=True,
        read_only=True,
    ),
]
