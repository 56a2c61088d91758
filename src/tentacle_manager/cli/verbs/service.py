"""`service`: install, start, stop, restart, reconfigure, uninstall the agent as a service.

Unlike Tentacle, a start, stop or restart that fails makes the command fail (exit 1): an
unattended install must not report success for an agent that is not running.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tentacle_manager.cli.verb import CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.instances.registry import HOME_OVERRIDE_VARIABLE, InstanceRegistry
from tentacle_manager.platform.services.choose import choose_manager
from tentacle_manager.platform.services.spec import ServiceManager, ServiceSpec

# Passed on to the agent so it finds the same instance index and secret store as this command.
INHERITED_VARIABLES = (HOME_OVERRIDE_VARIABLE, "TENTACLE_SECRET_STORE", "XDG_CONFIG_HOME")
ALL_INSTANCES = "*"


def _options(parser: argparse.ArgumentParser) -> None:
    for action in _DONE:
        parser.add_argument(
            f"--{action}", action="store_true", help=f"{action.capitalize()} the service"
        )
    parser.add_argument("--status", action="store_true", help="Show whether the service runs")
    parser.add_argument(
        "--username", "--user", help="Account to run as (DOMAIN\\Username on Windows; default root)"
    )
    parser.add_argument("--password", help="Password of that account (Windows only)")
    parser.add_argument("--dependOn", help="A service this one must start after")
    parser.add_argument(
        "--manager",
        help="Force a service manager: systemd, windows or supervisor (default: what fits here)",
    )
    parser.add_argument("--format", default="text", help="Format of --status output (text,json)")


def _run(args: argparse.Namespace, console: Console) -> int:
    chosen = [action for action in _DONE if getattr(args, action)]  # in Tentacle's order
    if not chosen and not args.status:
        raise CliError(
            "Nothing to do.",
            "Pass one or more of --install --start --stop --restart "
            "--reconfigure --uninstall --status.",
        )
    if args.instance == ALL_INSTANCES:
        if set(chosen) - {"start", "stop", "restart"} or args.status:
            raise CliError("--instance=* can only be used for --start, --stop, and --restart flags")
        names = [record.name for record in InstanceRegistry().list_instances()]
    else:
        names = [args.instance]
    manager = choose_manager(args.manager)
    for name in names:
        args.instance = name
        spec = _spec(args)
        for action in chosen:
            _perform(action, manager, spec, console)
        if args.status:
            _status(manager, spec, args, console)
    return 0


def _spec(args: argparse.Namespace) -> ServiceSpec:
    instance = open_instance(args)
    selector = (
        [f"--instance={instance.name}"] if instance.name else [f"--config={instance.config_path}"]
    )
    return ServiceSpec.create(
        instance=instance.name,
        config_path=instance.config_path,
        argv=(*agent_command(), *selector, "--noninteractive"),
        username=args.username,
        password=args.password,
        depend_on=args.dependOn,
        environment={k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ},
    )


def agent_command() -> tuple[str, ...]:
    """How to start `tentacle agent`: the frozen `tentacle`, or this Python.

    Both frozen programs share one folder, and the manager (which installs services too) has
    no `agent` verb of its own, so a frozen build always names the `tentacle` beside it."""
    if getattr(sys, "frozen", False):
        executable = Path(sys.executable)
        return (str(executable.with_name("tentacle" + executable.suffix)), "agent")
    return (sys.executable, "-m", "tentacle_manager.cli.main", "agent")


# What each action is called once done, for the line it prints.
_DONE = {
    "restart": "restarted",
    "stop": "stopped",
    "uninstall": "uninstalled",
    "install": "installed",
    "reconfigure": "reconfigured",
    "start": "started",
}


def _perform(action: str, manager: ServiceManager, spec: ServiceSpec, console: Console) -> None:
    getattr(manager, action)(spec)
    console.info(f"Service {_DONE[action]}: {spec.service_name} ({manager.name})")


def _status(
    manager: ServiceManager, spec: ServiceSpec, args: argparse.Namespace, console: Console
) -> None:
    status = manager.status(spec)
    if wants_json(args):
        console.json(
            {"ServiceName": spec.service_name, "Manager": manager.name, "Status": status.value}
        )
    else:
        console.payload(f"{spec.service_name} ({manager.name}): {status.value}")


VERBS = [
    Verb(
        "service",
        "Start, stop, install and configure the Tentacle service",
        _options,
        _run,
        instance_bound=True,
    )
]
