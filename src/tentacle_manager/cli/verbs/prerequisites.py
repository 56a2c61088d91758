"""`check-prerequisites`: every prerequisite check at once, for unattended installs and support.

Tentacle only checks its prerequisites in the Manager's window, one at a time, stopping at the
first failure. This verb runs the same checks as the GUI's dialog, all of them, concurrently,
and prints each result as it arrives; it exits 1 when any check failed (warnings do not fail
it), so an install script can stop before it sets up an agent that cannot work.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tentacle_manager.cli.verb import EXIT_FAILED, EXIT_OK, CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import selected_instance
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import SelectedInstance
from tentacle_manager.instances.secrets import SecretStoreError
from tentacle_manager.instances.tentacle_config import DEFAULT_PORT, TentacleConfigFile
from tentacle_manager.setup.checks import standard_checks
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    run_checks,
)

_MARKS = {
    CheckState.PASSED: "[ ok ]",
    CheckState.WARNING: "[warn]",
    CheckState.FAILED: "[FAIL]",
}


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", help="Check for this instance: its home, port and secrets")
    parser.add_argument("--config", help="Check for the instance with this configuration file")
    parser.add_argument("--home", help="Home folder to check (overrides the instance's)")
    parser.add_argument(
        "--port",
        type=int,
        help=f"Listen port to check (overrides the instance's; default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--manager", help="Check this service manager: systemd, windows or supervisor"
    )


def _run(args: argparse.Namespace, console: Console) -> int:
    context = _context(args)
    checks = standard_checks()
    json_output = wants_json(args)

    def show(check: Check, result: CheckResult) -> None:
        if not json_output and result.state in _MARKS:
            console.payload(_text(check, result))

    results = asyncio.run(run_checks(checks, context, show))
    if json_output:
        console.json(_document(checks, results))
    else:
        console.payload(_summary(results))
    failed = any(result.state is CheckState.FAILED for result in results.values())
    return EXIT_FAILED if failed else EXIT_OK


def _context(args: argparse.Namespace) -> CheckContext:
    """Home, port and secrets from the instance when one is named; options win over it."""
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CliError(f"--port: {args.port} is not a port.", "Give a number from 1 to 65535.")
    if not (args.instance or args.config):
        if args.home is None:
            raise CliError(
                "Nothing to check for: no instance and no home folder.",
                "Pass --instance=<name> (or --config=<file>), or --home=<folder> [--port=<port>].",
            )
        return CheckContext(
            home=Path(args.home).absolute(),
            listen_port=DEFAULT_PORT if args.port is None else args.port,
            service_manager=args.manager,
        )
    selected = selected_instance(args)
    config = TentacleConfigFile(selected.configuration_file_path).load()
    home = args.home or config.home
    if home is None:
        raise CliError(
            f"The instance's configuration {selected.configuration_file_path} has no Octopus.Home.",
            "Pass --home=<folder>, or set it with `tentacle configure --home=<folder>`.",
        )
    port = args.port if args.port is not None else None if config.no_listen else config.port
    return CheckContext(
        home=Path(home).absolute(),
        listen_port=port,
        listen_address=config.listen_ip or "",
        service_manager=args.manager,
        **_secret_places(selected),
    )


def _secret_places(selected: SelectedInstance) -> dict[str, Any]:
    """Where this instance keeps its secrets; when no store can be chosen the secret-store
    check reports why, alongside the other checks, instead of this verb stopping here."""
    try:
        instance = Instance(selected)
    except SecretStoreError:
        return {}
    return {"secret_service": instance.secret_service, "secret_fallback": instance.secret_fallback}


def _text(check: Check, result: CheckResult) -> str:
    lines = [f"{_MARKS[result.state]} {check.title}: {result.message} ({result.duration:.1f} s)"]
    if result.state is not CheckState.PASSED:
        advice = (("Fix", result.remedy), ("See", result.help_url))
        lines += [f"       {label}: {text}" for label, text in advice if text]
    return "\n".join(lines)


def _summary(results: dict[str, CheckResult]) -> str:
    count = Counter(result.state for result in results.values())
    return (
        f"{count[CheckState.PASSED]} passed, {count[CheckState.WARNING]} with warnings, "
        f"{count[CheckState.FAILED]} failed"
    )


def _document(checks: list[Check], results: dict[str, CheckResult]) -> dict[str, Any]:
    return {
        "Checks": [_entry(check, results[check.key]) for check in checks],
        "Failed": sum(result.state is CheckState.FAILED for result in results.values()),
    }


def _entry(check: Check, result: CheckResult) -> dict[str, Any]:
    return {
        "Key": check.key,
        "Title": check.title,
        "State": result.state.value,
        "Message": result.message,
        "Remedy": result.remedy,
        "HelpUrl": result.help_url,
        "Output": result.output,
        "Duration": round(result.duration, 3),
    }


VERBS = [
    Verb(
        "check-prerequisites",
        "Checks that this machine can run a Tentacle: shells, service manager, port, home, "
        "secrets, clock, security products",
        _options,
        _run,
        read_only=True,
    )
]
