"""What a command of the `tentacle` program is, and the errors a command reports.

Each verb module exports `VERBS`; `commands.py` says which module holds which verb. A verb
adds its options to an argparse parser and runs with the parsed namespace and a `Console`; it
returns the exit code or raises `CliError` (or an error of the layers below, which `program`
turns into one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILED = 1  # a controlled failure: one line on stderr saying what and how to fix it
EXIT_USAGE = 2  # no command, or an unknown one
EXIT_UNEXPECTED = 100  # a bug or an unforeseen environment; the message and the log say more


class CliError(Exception):
    def __init__(self, message: str, remedy: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        self.code = code

    def one_line(self) -> str:
        return f"{self.message} {self.remedy}" if self.remedy else self.message


@dataclass(frozen=True)
class Verb:
    name: str
    description: str
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Console], int]
    aliases: tuple[str, ...] = ()
    instance_bound: bool = False  # takes --instance and --config and works on one instance
    read_only: bool = False  # prints data; takes --format text|json


@dataclass
class Console:
    """Where a verb writes: progress and results to stdout, warnings too (as Tentacle does),
    errors to stderr."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False  # read verbs print only their payload

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.out)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.out)

    def error(self, message: str) -> None:
        print(message, file=self.err)

    def payload(self, text: str, newline: bool = True) -> None:
        self.out.write(text + ("\n" if newline else ""))
        self.out.flush()

    def json(self, value: Any, indent: int | None = 2) -> None:
        self.payload(json.dumps(value, indent=indent, default=str))


RESTART_REMINDER = "These changes require a restart of the Tentacle."


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "format", "text") == "json"
