"""`agent` (alias `run`): the agent in the foreground, as services run it; and `livez`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

from tentacle_manager.agent.host import heartbeat
from tentacle_manager.agent.host.log_files import configure_logging, level_from_environment
from tentacle_manager.agent.host.plan import plan_for
from tentacle_manager.agent.host.run import AgentPlan, serve
from tentacle_manager.cli.verb import CliError, Console, Verb
from tentacle_manager.cli.verbs.selection import open_instance

LOG_LEVEL_VARIABLE = "OCTOPUS__TENTACLE__LOGLEVEL"


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", type=int, default=0, help="Milliseconds to wait before starting (at least 20)"
    )


def _agent(args: argparse.Namespace, console: Console) -> int:
    if args.wait >= 20:
        time.sleep(args.wait / 1000)
    instance = open_instance(args)
    layout = instance.layout()
    layout.ensure()
    configure_logging(layout.logs, level_from_environment(os.environ.get(LOG_LEVEL_VARIABLE)))
    plan = plan_for(instance)
    asyncio.run(_serve_until_signalled(plan))
    return 0


async def _serve_until_signalled(plan: AgentPlan) -> None:
    """SIGTERM (service managers) and SIGINT (Ctrl-C) stop the agent the same gentle way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(number, stop.set)
        except NotImplementedError:  # Windows: no loop signal handlers, but signal.signal works
            signal.signal(number, lambda *_: loop.call_soon_threadsafe(stop.set))
    await serve(plan, stop)


def _livez_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-age", type=int, default=60, help="Seconds the heartbeat may be old (default 60)"
    )


def _livez(args: argparse.Namespace, console: Console) -> int:
    if args.max_age <= 0:
        raise CliError(f"--max-age must be more than 0 seconds, but was {args.max_age}.")
    home = open_instance(args).layout().home
    age = heartbeat.age_seconds(home)
    if age is None:
        raise CliError(
            f"The heartbeat file {home / heartbeat.HEARTBEAT_FILE} was not found.",
            "Is the agent running? Start it with `tentacle service --start`.",
        )
    if age > args.max_age:
        raise CliError(
            f"The heartbeat is stale: last beat {age:.0f} s ago (limit {args.max_age} s).",
            "The agent may be hung; restart it with `tentacle service --restart`.",
        )
    console.info(f"The agent is alive: last heartbeat {age:.0f} s ago.")
    return 0


VERBS = [
    Verb(
        "agent",
        "Starts the Tentacle Agent in the foreground",
        _agent_options,
        _agent,
        aliases=("run",),
        instance_bound=True,
    ),
    Verb(
        "livez",
        "Checks that the agent's heartbeat is fresh",
        _livez_options,
        _livez,
        instance_bound=True,
    ),
]
