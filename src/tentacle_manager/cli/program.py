"""Running one `tentacle` command: choose the verb, parse its options, run it, map failures
to exit codes and one-line messages."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from tentacle_manager.cli import audit, commands
from tentacle_manager.cli.parsing import TentacleArgumentParser, command_word, normalise
from tentacle_manager.cli.verb import (
    EXIT_FAILED,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    CliError,
    Console,
    Verb,
)

log = logging.getLogger(__name__)


def build_parser(verb: Verb) -> argparse.ArgumentParser:
    parser = TentacleArgumentParser(prog=f"tentacle {verb.name}", add_help=False)
    if verb.instance_bound:
        parser.add_argument("--instance", help="Name of the instance to use")
        parser.add_argument("--config", help="Configuration file to use")
    if verb.read_only:
        parser.add_argument("--format", default="text", help="The format of the output (text,json)")
    verb.add_options(parser)
    return parser


def run(argv: Sequence[str], console: Console) -> int:
    from tentacle_manager.cli.verbs.help import show_help

    if not argv:
        show_help(None, "text", console)
        return EXIT_USAGE
    word, rest = command_word(argv[0]), list(argv[1:])
    verb = commands.find(word)
    if verb is None:
        console.error(f"Command '{word}' is not supported")
        console.payload("See 'Tentacle help'")
        return EXIT_USAGE
    if any(command_word(token) in ("help", "?") and token.startswith(("-", "/")) for token in rest):
        show_help(verb, _format_in(rest), console)
        return 0
    try:
        return _run(verb, rest, console)
    except CliError as error:
        console.error(error.one_line())
        return error.code
    except KeyboardInterrupt:
        console.error("Interrupted.")
        return 130
    except Exception as error:  # the last line of defence: never a bare traceback
        controlled = _controlled(error)
        if controlled is not None:
            console.error(controlled)
            return EXIT_FAILED
        log.exception("Unexpected failure in %s", verb.name)
        console.error("=" * 79)
        console.error(f"{type(error).__name__}: {error}")
        console.error(f"Terminating process with exit code {EXIT_UNEXPECTED}")
        return EXIT_UNEXPECTED


def _controlled(error: Exception) -> str | None:
    """The one line for an error the layers below raise on purpose, or None for a bug.

    Imported here, not at the top: only a failing command pays for loading them."""
    from tentacle_manager.contracts import ProblemsError
    from tentacle_manager.instances.errors import InstanceError
    from tentacle_manager.platform.services.spec import ServiceError

    if isinstance(error, InstanceError):
        return error.one_line()
    if isinstance(error, ServiceError | ProblemsError):
        return str(error)
    return None


def _run(verb: Verb, tokens: list[str], console: Console) -> int:
    parser = build_parser(verb)
    args, extras = parser.parse_known_args(normalise(tokens, parser))
    if extras:
        raise CliError(f"Unrecognized command line arguments: {' '.join(extras)}")
    if verb.instance_bound:
        audit.record(verb, args, tokens)
    if verb.read_only:
        args.format = args.format.lower()
        if args.format not in ("text", "json"):
            raise CliError(f"The format '{args.format}' is not supported. Try text or json.")
        console.quiet = True
    return verb.run(args, console)


def _format_in(tokens: list[str]) -> str:
    for index, token in enumerate(tokens):
        name = token.lstrip("-/").lower()
        if name.startswith("format") and name[6:7] in ("=", ":"):
            return name[7:]
        if name == "format" and index + 1 < len(tokens):
            return tokens[index + 1].lower()
    return "text"
