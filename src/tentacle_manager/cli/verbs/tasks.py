"""`run-task FILE`: run a multi-step task described in TOML against one or more agents.

The CLI connects to every agent with this machine's admin certificate for the chosen
instance, pinning each agent by the thumbprint the task file gives. Ctrl-C cancels the task:
no further step starts, and the running scripts are cancelled (and abandoned if they will not
die).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from tentacle_manager.cli.verb import CliError, Console, Verb
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.task import TaskError
from tentacle_manager.client.task_file import TaskFile, load_task_file
from tentacle_manager.client.task_runner import TaskOutcome, TaskResult, TaskRunner
from tentacle_manager.client.tls import ClientIdentity
from tentacle_manager.contracts import ProcessOutput, ProcessOutputSource


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="The task file (TOML)")


def _run_task(args: argparse.Namespace, console: Console) -> int:
    try:
        task_file = load_task_file(Path(args.file))
    except TaskError as error:
        raise CliError(str(error)) from None
    files = open_instance(args).admin_tls_files()
    identity = ClientIdentity(files.certificate, files.private_key, files.passphrase)
    result = asyncio.run(_run(task_file, identity, console))
    _report(result, console)
    return 0 if result.outcome is TaskOutcome.SUCCEEDED else 1


async def _run(task_file: TaskFile, identity: ClientIdentity, console: Console) -> TaskResult:
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, cancel.set)
    agents = {
        name: HttpsAgent(endpoint.url, identity, endpoint.thumbprint)
        for name, endpoint in task_file.agents.items()
    }
    try:
        runner = TaskRunner(on_output=_printer(console))
        return await runner.run(task_file.task, agents, cancel)
    finally:
        for agent in agents.values():
            await agent.close()


def _printer(console: Console) -> Callable[[str, str, ProcessOutput], None]:
    def show(step: str, agent: str, record: ProcessOutput) -> None:
        line = f"[{step} @ {agent}] {record.text}"
        if record.source is ProcessOutputSource.STDERR:
            console.error(line)
        elif record.source is not ProcessOutputSource.DEBUG:
            console.payload(line)

    return show


def _report(result: TaskResult, console: Console) -> None:
    for step in result.steps:
        for agent, script in step.scripts.items():
            console.error(
                f"{step.step} @ {agent}: exit code {script.exit_code} ({script.outcome.value})"
            )
        for agent, error in step.errors.items():
            console.error(f"{step.step} @ {agent}: {error}")
    console.error(f"Task {result.task}: {result.outcome.value}")


VERBS = [
    Verb(
        "run-task",
        "Runs a multi-step task file against its agents",
        _options,
        _run_task,
        instance_bound=True,
    ),
]
