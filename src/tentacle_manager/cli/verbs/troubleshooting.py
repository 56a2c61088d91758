"""Troubleshooting verbs: check-connectivity, fire-drill, support-bundle.

Each prints its stages or rungs as they complete, so a slow step shows where it is stuck,
and ends with one verdict; `--format json` prints the whole report instead. A check that
finds a problem exits 1 with the problem and its remedy on stderr, like any controlled
failure.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Callable
from pathlib import Path

from tentacle_manager.cli.verb import EXIT_FAILED, EXIT_OK, CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.client.local import local_agent
from tentacle_manager.contracts import ProblemsError
from tentacle_manager.diagnostics.connectivity import (
    StageTimeouts,
    check_agent,
    check_server,
    server_address,
    server_route,
)
from tentacle_manager.diagnostics.fire_drill import DrillOptions, DrillReport, run_fire_drill
from tentacle_manager.diagnostics.stages import CheckReport, Outcome, StageResult
from tentacle_manager.diagnostics.support_bundle import (
    DAYS_RULE,
    BundleManifest,
    BundleSection,
    ExtraSection,
    write_support_bundle,
)
from tentacle_manager.instances.certificates import CertificateError, normalise_thumbprint
from tentacle_manager.instances.tentacle_config import ProxyKind

MAX_TIMEOUT = 3600.0
PROXY_CHOICES = {"polling": ProxyKind.POLLING, "web": ProxyKind.HTTP, "none": None}
_LABELS = {Outcome.PASSED: "PASS", Outcome.FAILED: "FAIL", Outcome.SKIPPED: "SKIP"}


def _seconds(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:
        raise CliError(
            f"{option}: must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
            f"not {text!r}."
        )
    return value


def _stage_printer(args: argparse.Namespace, console: Console) -> Callable[[StageResult], None]:
    """One line per stage as it ends (text only: JSON prints the report once, at the end)."""

    def show(result: StageResult) -> None:
        if wants_json(args):
            return
        took = f"{result.seconds:7.3f} s" if result.outcome is not Outcome.SKIPPED else " " * 9
        console.payload(f"{_LABELS[result.outcome]}  {result.title:<60} {took}  {result.detail}")
        if result.outcome is Outcome.FAILED and result.remedy:
            console.payload(f"      Remedy: {result.remedy}")

    return show


def _fail_with(failure: StageResult | None, console: Console) -> int:
    if failure is None:
        return EXIT_OK
    remedy = f" {failure.remedy}" if failure.remedy else ""
    console.error(f"{failure.title}: {failure.detail}.{remedy}")
    return EXIT_FAILED


# --- check-connectivity ------------------------------------------------------------------------


def _connectivity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-url",
        help="Check the way from this machine to the Octopus Server at this https:// URL, "
        "instead of the way to the instance's agent",
    )
    parser.add_argument(
        "--thumbprint", help="With --server-url: the server certificate's thumbprint to pin"
    )
    parser.add_argument(
        "--proxy",
        default="polling",
        help="With --server-url: the instance's proxy to go through: polling (the default, as "
        "a polling Tentacle), web, or none",
    )
    parser.add_argument("--timeout", help="Seconds each stage may take (default 5 to 30)")


def _check_connectivity(args: argparse.Namespace, console: Console) -> int:
    seconds = _seconds("--timeout", args.timeout)
    timeouts = (
        StageTimeouts() if seconds is None else StageTimeouts(seconds, seconds, seconds, seconds)
    )
    printer = _stage_printer(args, console)
    if args.server_url is None:
        report = asyncio.run(_check_local_agent(args, timeouts, printer))
    else:
        report = asyncio.run(_check_server(args, timeouts, printer))
    if wants_json(args):
        console.json(report.to_json())
    elif report.passed:
        console.payload(f"Connectivity to {report.target}: every check passed.")
    return _fail_with(report.failure, console)


async def _check_local_agent(
    args: argparse.Namespace, timeouts: StageTimeouts, printer: Callable[[StageResult], None]
) -> CheckReport:
    async with local_agent(open_instance(args)) as agent:
        return await check_agent(agent, timeouts=timeouts, on_stage=printer)


async def _check_server(
    args: argparse.Namespace, timeouts: StageTimeouts, printer: Callable[[StageResult], None]
) -> CheckReport:
    url = args.server_url
    try:
        server_address(url)
    except ValueError as error:
        raise CliError(f"--server-url: {error} (got {url!r}).") from None
    thumbprint = None
    if args.thumbprint is not None:
        try:
            thumbprint = normalise_thumbprint(args.thumbprint)
        except CertificateError as error:
            raise CliError(f"--thumbprint: {error.message}") from None
    choice = args.proxy.lower()
    if choice not in PROXY_CHOICES:
        raise CliError(f"--proxy: must be polling, web or none, not {args.proxy!r}.")
    kind = PROXY_CHOICES[choice]
    proxy = None if kind is None else server_route(open_instance(args), url, kind)
    return await check_server(
        url, expected_thumbprint=thumbprint, proxy=proxy, timeouts=timeouts, on_stage=printer
    )


# --- fire-drill ----------------------------------------------------------------------------------


def _drill_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        help=f"Seconds the cancel may take before the drill calls it stuck (default "
        f"{DrillOptions().cancel_timeout:g})",
    )


def _fire_drill(args: argparse.Namespace, console: Console) -> int:
    seconds = _seconds("--timeout", args.timeout)
    options = DrillOptions() if seconds is None else DrillOptions(cancel_timeout=seconds)
    report = asyncio.run(_drill(args, options, console))
    if wants_json(args):
        console.json(report.to_json())
    else:
        console.payload(report.verdict)
    if not report.passed:
        console.error(report.verdict)
        return EXIT_FAILED
    return EXIT_OK


async def _drill(args: argparse.Namespace, options: DrillOptions, console: Console) -> DrillReport:
    instance = open_instance(args)
    work_root = instance.layout().work

    def note(text: str) -> None:
        if not wants_json(args):
            console.payload(f"      {text}")

    async with local_agent(instance) as agent:
        return await run_fire_drill(
            agent, work_root, options, on_rung=_stage_printer(args, console), on_note=note
        )


# --- support-bundle ------------------------------------------------------------------------------


def _bundle_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="The zip file to write")
    parser.add_argument("--days", default="7", help="Include logs changed in this many days")
    parser.add_argument(
        "--attach",
        action="append",
        default=[],
        help="A report file to add to the bundle (repeat for more)",
    )


_BUNDLE_OPTIONS = {"days": "--days", "output": "--output", "extra_sections": "--attach"}


def _support_bundle(args: argparse.Namespace, console: Console) -> int:
    try:
        days = int(args.days)
    except ValueError:
        raise CliError(f"--days: {DAYS_RULE}, not {args.days!r}.") from None
    extras = [_attachment(path) for path in args.attach]

    def show(section: BundleSection) -> None:
        if not wants_json(args):
            note = f" ({section.note})" if section.note else ""
            console.payload(
                f"{section.name}: {len(section.members)} file(s), {section.size} bytes{note}"
            )

    instance = open_instance(args)
    try:
        manifest: BundleManifest = asyncio.run(
            write_support_bundle(
                instance, Path(args.output), days=days, extra_sections=extras, on_section=show
            )
        )
    except ProblemsError as error:
        raise CliError(
            "; ".join(f"{_BUNDLE_OPTIONS.get(f, f)}: {rule}" for f, rule in error.problems.items())
            + "."
        ) from None
    except OSError as error:
        raise CliError(
            f"--output: cannot write {args.output}: {error.strerror or error}.",
            "Choose a folder this user can write to, with free space.",
        ) from None
    if wants_json(args):
        console.json(manifest.to_json())
    else:
        files = sum(len(section.members) for section in manifest.sections)
        console.payload(
            f"Support bundle written to {manifest.path} ({files} files, {manifest.size} bytes "
            f"before compression); {len(manifest.redacted_keys)} secret setting(s) redacted, "
            f"{manifest.masked_values} secret value(s) masked wherever they appeared."
        )
    return EXIT_OK


def _attachment(path: str) -> ExtraSection:
    try:
        return ExtraSection(Path(path).name, Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CliError(f"--attach: cannot read {path}: {reason}.") from None


VERBS = [
    Verb(
        "check-connectivity",
        "Checks the way to the agent (or, with --server-url, to an Octopus Server) step by step",
        _connectivity_options,
        _check_connectivity,
        instance_bound=True,
        read_only=True,
    ),
    Verb(
        "fire-drill",
        "Runs a script that resists cancel through the agent, cancels it and grades each step",
        _drill_options,
        _fire_drill,
        instance_bound=True,
        read_only=True,
    ),
    Verb(
        "support-bundle",
        "Writes a zip of logs, redacted configuration, versions and service state for support",
        _bundle_options,
        _support_bundle,
        instance_bound=True,
        read_only=True,
    ),
]
