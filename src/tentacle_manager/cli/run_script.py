"""`tentacle run-script`: run one script through an in-process script service.

Useful for trying the service out and for support: it prints the script's records as they
arrive, Ctrl-C cancels through the cancel ladder, a second Ctrl-C abandons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CompleteScriptCommand,
    ContractError,
    ProcessOutputSource,
    ProcessState,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    StartScriptCommand,
    ticket,
)

DEMO_SCRIPT = """\
echo "Hello from the Tentacle Manager script service."
echo "Working directory: $(pwd)"
for step in 1 2 3; do echo "step $step of 3"; sleep 0.3; done
echo "a line on stderr" >&2
echo "Done."
"""

DEFAULT_HOME = Path.home() / ".local" / "share" / "tentacle-manager" / "try-it"


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("run-script", help="run a script through the script service")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--body", help="the script body")
    source.add_argument("--file", type=Path, help="a file holding the script body")
    source.add_argument("--demo", action="store_true", help="run a short demonstration script")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="agent home folder")
    parser.add_argument("--task-id", default="ServerTasks-local", help="server task id to show")
    parser.add_argument("--mutex", default=None, help="isolation mutex name")
    parser.add_argument(
        "--isolation", choices=["full", "none"], default="full", help="isolation level"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    parser.add_argument("arguments", nargs="*", help="arguments passed to the script")
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    if args.demo:
        body = DEMO_SCRIPT
    elif args.file is not None:
        try:
            body = args.file.read_text()
        except OSError as error:
            print(f"--file: cannot read {args.file}: {error.strerror}", file=sys.stderr)
            return 2
    else:
        body = args.body
    try:
        command = StartScriptCommand(
            script_ticket=ticket(uuid.uuid4().hex),
            task_id=args.task_id,
            script_body=body,
            isolation=ScriptIsolationLevel.FULL_ISOLATION
            if args.isolation == "full"
            else ScriptIsolationLevel.NO_ISOLATION,
            isolation_mutex_name=args.mutex,
            arguments=args.arguments,
            duration_to_wait_for_script_to_finish=timedelta(0),
        )
    except (ContractError, ValueError) as error:
        print(f"invalid script request: {error}", file=sys.stderr)
        return 2
    settings = ScriptServiceSettings(minimum_free_disk_bytes=0)
    async with ScriptService(args.home, settings) as service:
        interrupts = _watch_interrupts(service, command)
        status = await service.start_script(command)
        sequence = 0
        while True:
            for record in status.logs:
                _print(record.source, record.text)
            sequence = status.next_log_sequence
            if status.state is ProcessState.COMPLETE:
                break
            await asyncio.sleep(0.1)
            status = await service.get_status(
                ScriptStatusRequest(ticket=command.script_ticket, last_log_sequence=sequence)
            )
        interrupts.cancel()
        print(f"exit code {status.exit_code}", file=sys.stderr)
        if not args.keep:
            await service.complete_script(CompleteScriptCommand(ticket=command.script_ticket))
        return 0 if status.exit_code == 0 else 1


def _watch_interrupts(service: ScriptService, command: StartScriptCommand) -> asyncio.Task[None]:
    """First Ctrl-C cancels (the ladder), the second abandons."""
    presses = asyncio.Queue[None]()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, presses.put_nowait, None)

    async def escalate() -> None:
        await presses.get()
        print("cancelling (Ctrl-C again to abandon)...", file=sys.stderr)
        await service.cancel_script(CancelScriptCommand(ticket=command.script_ticket))
        await presses.get()
        print("abandoning...", file=sys.stderr)
        await service.abandon_script(AbandonScriptCommand(ticket=command.script_ticket))

    return loop.create_task(escalate())


def _print(source: ProcessOutputSource, text: str) -> None:
    if source is ProcessOutputSource.STDERR:
        print(text, file=sys.stderr)
    elif source is ProcessOutputSource.DEBUG:
        print(f"[debug] {text}", file=sys.stderr)
    else:
        print(text)
