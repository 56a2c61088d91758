"""`antivirus` (alias `av-advisor`): which security products could slow or hang the agent's
scripts, what to exclude for the instance's home, and whether it is excluded already.

Beyond Tentacle, which only documents the folders: the evidence for each product found, the
state of each exclusion per product, `--write-scripts` for the Defender script (with -DryRun
and an undo script), a clamd.conf snippet and a request pack for the security team, and
`--measure` to time a canary workload in Work against a folder outside it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tentacle_manager.cli.verb import CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.diagnostics.antivirus import (
    Advice,
    AdvisorError,
    CanaryResult,
    Target,
    advise,
    measure_interference,
    write_artefacts,
)
from tentacle_manager.diagnostics.antivirus.canary import DEFAULT_SCRIPTS, check_scripts

T = TypeVar("T")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="Advise for this home folder instead of an instance's")
    parser.add_argument(
        "--clamd-conf", help="The clamd.conf to check (default: the one clamd uses)"
    )
    parser.add_argument(
        "--write-scripts",
        help="Write the exclusion scripts and the request pack into this folder",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="Time a canary workload in Work against a folder outside it",
    )
    parser.add_argument(
        "--canary-scripts",
        type=_canary_scripts,
        default=DEFAULT_SCRIPTS,
        help=f"Scripts the canary runs in each folder (default {DEFAULT_SCRIPTS})",
    )


def _canary_scripts(text: str) -> int:
    """argparse reports the rule as `argument --canary-scripts: <rule>`."""
    try:
        scripts = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    try:
        return check_scripts(scripts)
    except AdvisorError as error:
        raise argparse.ArgumentTypeError(error.rule) from None


def _antivirus(args: argparse.Namespace, console: Console) -> int:
    home = _home(args)
    clamd_conf = None if args.clamd_conf is None else Path(args.clamd_conf)
    advice = _asked("--clamd-conf", lambda: asyncio.run(advise(home, clamd_conf=clamd_conf)))
    measured = None
    if args.measure:
        measured = _asked(
            "--measure",
            lambda: asyncio.run(measure_interference(home, scripts=args.canary_scripts)),
        )
    written: list[Path] = []
    if args.write_scripts is not None:
        folder = Path(args.write_scripts)
        written = _asked("--write-scripts", lambda: write_artefacts(advice, folder))
    if wants_json(args):
        console.json(
            {
                **advice.as_dict(),
                "Measurement": None if measured is None else measured.as_dict(),
                "Written": [str(path) for path in written],
            }
        )
    else:
        console.payload(_as_text(advice, measured, written))
    return 0


def _asked(option: str, work: Callable[[], T]) -> T:
    """Run `work`; bad input becomes one line that names the option it came in by."""
    try:
        return work()
    except AdvisorError as error:
        raise CliError(f"{option}: {error}") from None


def _home(args: argparse.Namespace) -> Path:
    if args.home is None:
        return open_instance(args).layout().home
    home = Path(args.home).absolute()
    if not home.is_dir():
        raise CliError(
            f"--home: {home} is not a folder.",
            "Give the Tentacle home (the folder that holds Work, Logs, Tools and Files).",
        )
    return home


def _as_text(advice: Advice, measured: CanaryResult | None, written: list[Path]) -> str:
    lines = [f"Anti-virus exclusion advice for the Tentacle home {advice.home}", ""]
    lines.append(
        "Security products found:" if advice.assessments else "Security products found: none"
    )
    for assessment in advice.assessments:
        product = assessment.detection.product
        lines.append(f"  {product.name} (exclusions are made in {product.where})")
        lines += [f"    {e.kind.value}: {e.detail}" for e in assessment.detection.evidence]
        lines += [f"    note: {note}" for note in assessment.notes]
    lines += ["", "Recommended exclusions, and whether each product has them:"]
    for number, recommendation in enumerate(advice.recommendations, start=1):
        scope = (
            "with sub-directories"
            if recommendation.target is Target.FOLDER
            else "the files it opens"
        )
        lines.append(
            f"  {number}. {recommendation.target.value} {recommendation.path} ({scope}), "
            f"priority {recommendation.priority}"
        )
        lines.append(f"     {recommendation.reason}")
        for assessment in advice.assessments:
            coverage = assessment.coverage[number - 1]
            lines.append(
                f"     {assessment.detection.product.name}: {coverage.state.value}. "
                f"{coverage.detail}"
            )
    lines += ["", "Process exclusions, as Microsoft documents them:"]
    lines += [f"  - {caveat}" for caveat in advice.caveats]
    if advice.not_checked:
        lines += ["", "Not checked:"] + [f"  - {note}" for note in advice.not_checked]
    if measured is not None:
        lines += ["", f"Canary: {measured.summary()}"]
    if written:
        lines += ["", "Written:"] + [f"  {path}" for path in written]
    return "\n".join(lines)


VERBS = [
    Verb(
        "antivirus",
        "Advises on anti-virus exclusions for the instance's home",
        _options,
        _antivirus,
        aliases=("av-advisor",),
        instance_bound=True,
        read_only=True,
    ),
]
