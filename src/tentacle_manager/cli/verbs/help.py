"""`help` and `version`: what the program can do, in Tentacle's layout or as JSON for scripts."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence

from tentacle_manager import __version__
from tentacle_manager.cli.verb import Console, Verb, wants_json

OPTION_COLUMN = 29


def show_help(verb: Verb | None, fmt: str, console: Console) -> None:
    if verb is None:
        from tentacle_manager.cli.commands import all_verbs

        _general(all_verbs(), fmt, console)
    else:
        _one(verb, fmt, console)


def _general(verbs: Sequence[Verb], fmt: str, console: Console) -> None:
    ordered = sorted(verbs, key=lambda v: v.name)
    if fmt == "json":
        console.json(
            {
                "Commands": [
                    {"Name": v.name, "Description": v.description, "Aliases": list(v.aliases)}
                    for v in ordered
                ]
            }
        )
        return
    lines = ["Usage: Tentacle <command> [<options>]", "", "Where <command> is one of: "]
    for v in ordered:
        lines += [f"  {v.name:<15}", f"   {v.description}"]
    lines += ["", "Or use <command> --help for more details."]
    console.payload("\n".join(lines))


def _one(verb: Verb, fmt: str, console: Console) -> None:
    from tentacle_manager.cli.program import build_parser

    options = [
        (_option_name(action), action.help or "")
        for action in build_parser(verb)._actions  # no public listing of a parser's options
    ]
    if fmt == "json":
        console.json(
            {
                "Name": verb.name,
                "Description": verb.description,
                "Aliases": list(verb.aliases),
                "Options": [{"Name": name, "Description": text} for name, text in options],
                "CommonOptions": [{"Name": "help", "Description": "Show detailed help"}],
            }
        )
        return
    lines = [f"Usage: Tentacle {verb.name} [<options>]", "", "Where [<options>] is any of: ", ""]
    for name, text in options:
        lines += _option_lines(name, text)
    lines += ["", "Or one of the common options: ", ""]
    lines += _option_lines("help", "Show detailed help")
    console.payload("\n".join(lines))


def _option_name(action: argparse.Action) -> str:
    name = action.option_strings[-1].lstrip("-") if action.option_strings else action.dest
    return name if action.nargs == 0 else f"{name}=VALUE"


def _option_lines(name: str, text: str) -> list[str]:
    wrapped = textwrap.wrap(text, 70) or [""]
    first = f"      --{name:<{OPTION_COLUMN - 8}} {wrapped[0]}"
    return [first, *(" " * (OPTION_COLUMN + 1) + line for line in wrapped[1:])]


def _no_options(parser: argparse.ArgumentParser) -> None:
    """help and version take nothing but --format."""


def _help(args: argparse.Namespace, console: Console) -> int:
    from tentacle_manager.cli.commands import find

    verb = find(args.command.lower()) if args.command else None
    if args.command and verb is None:
        console.error(f"Command '{args.command}' is not supported")
        console.payload("See 'Tentacle help'")
        return 0
    show_help(verb, args.format, console)
    return 0


def _help_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", nargs="?", help="The command to describe")


def _version(args: argparse.Namespace, console: Console) -> int:
    if wants_json(args):
        console.json(
            {
                "InformationalVersion": __version__,
                "MajorMinorPatch": __version__.split("+")[0],
                "NuGetVersion": __version__,
                "SourceBranchName": "main",
                "IsPrerelease": "-" in __version__,
            }
        )
    else:
        console.payload(__version__, newline=False)
    return 0


VERBS = [
    Verb("help", "Prints this help", _help_options, _help, aliases=("h", "?"), read_only=True),
    Verb("version", "Show the Tentacle version information", _no_options, _version, read_only=True),
]
