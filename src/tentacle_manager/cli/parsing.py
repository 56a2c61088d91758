"""Tentacle's command-line conventions on top of argparse.

Tentacle accepts `version`, `--version` and `/VERSION` as the same command word, option names
in any case, with `--`, `-` or `/` in front, and values after `=`, `:` or a space. Scripts
written for Tentacle.exe pass arguments this way, so the tokens are normalised to argparse's
`--name value` form first. A `/`-token that names no option is left alone: it is a path.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from tentacle_manager.cli.verb import CliError

HOST_SWITCHES = {"console", "noninteractive", "nologo"}  # accepted and ignored, as Tentacle does


class TentacleArgumentParser(argparse.ArgumentParser):
    """Raises CliError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise CliError(
            f"{message[0].upper()}{message[1:]}.",
            f"See 'tentacle {self.prog.split()[-1]} --help'.",
        )


def command_word(token: str) -> str:
    return token.lstrip("-/").lower()


def normalise(tokens: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Rewrite Tentacle-style option tokens into `--canonical[=value]` for argparse."""
    options = _options_of(parser)
    result: list[str] = []
    takes_value_next = False
    for token in tokens:
        if takes_value_next:
            result.append(token)
            takes_value_next = False
            continue
        if token == "--" or not token.startswith(("-", "/")) or token in ("-", "/"):
            result.append(token)
            continue
        name, separator, value = split_option(token.lstrip("-/") if token[0] != "/" else token[1:])
        if name.lower() in HOST_SWITCHES:
            continue
        action = options.get(name.lower())
        if action is None:
            result.append(token)  # argparse reports it, or it is a path
            continue
        canonical = next(o for o in action.option_strings if o.startswith("--"))
        if separator:
            result.append(f"{canonical}={value}")
        else:
            result.append(canonical)
            takes_value_next = action.nargs != 0
    return result


def split_option(body: str) -> tuple[str, str, str]:
    """`name`, the separator (`=`, `:` or nothing) and the value, split at the first of them."""
    cut = min((i for i in (body.find("="), body.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return body, "", ""
    return body[:cut], body[cut], body[cut + 1 :]


def _options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:  # the public API has no listing of a parser's options
        for option in action.option_strings:
            found[option.lstrip("-").lower()] = action
    return found
