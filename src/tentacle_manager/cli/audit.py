"""Every instance-bound command leaves two lines in the instance's log file, as Tentacle's do:
`==== <Command> ====` and the command line with sensitive values masked, so support can see
what was run against an agent, and when, without learning a password."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from tentacle_manager.cli.parsing import split_option
from tentacle_manager.cli.verb import Verb

MASK = "********"
SENSITIVE_OPTIONS = {"password", "proxypassword", "pfx-password", "pfxpassword", "pw"}

log = logging.getLogger(__name__)


def masked(tokens: Sequence[str]) -> list[str]:
    """The tokens with the value of every sensitive option replaced, in any of its forms."""
    result: list[str] = []
    hide_next = False
    for token in tokens:
        if hide_next:
            result.append(MASK)
            hide_next = False
            continue
        name, separator, value = _option(token)
        if name in SENSITIVE_OPTIONS:
            if separator:
                result.append(token[: len(token) - len(value)] + MASK)
            else:
                result.append(token)
                hide_next = True
        else:
            result.append(token)
    return result


def record(verb: Verb, args: argparse.Namespace, tokens: Sequence[str]) -> None:
    """Best effort: a command that cannot find its instance reports that itself, later."""
    from tentacle_manager.agent.host.log_files import LOG_FILE_NAME, TentacleFormatter
    from tentacle_manager.cli.verbs.selection import selected_instance
    from tentacle_manager.instances.tentacle_config import TentacleConfigFile

    try:
        home = TentacleConfigFile(selected_instance(args).configuration_file_path).load().home
    except Exception:  # whatever is wrong, the command itself will say so
        return
    if home is None:
        return
    logs = home / "Logs"
    formatter = TentacleFormatter()
    lines = [
        f"==== {verb.name} ====",
        f"CommandLine: tentacle {verb.name} {' '.join(masked(tokens))}",
    ]
    try:
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / LOG_FILE_NAME).open("a", encoding="utf-8") as file:
            for line in lines:
                made = logging.LogRecord(__name__, logging.INFO, __file__, 0, line, None, None)
                file.write(formatter.format(made) + "\n")
    except OSError as error:
        log.debug("Could not write the audit lines to %s: %s", logs, error)


def _option(token: str) -> tuple[str, str, str]:
    """Split as the parser does (tentacle_manager.cli.parsing), with the name lower-cased."""
    if not token.startswith(("-", "/")):
        return "", "", ""
    name, separator, value = split_option(token.lstrip("-/"))
    return name.lower(), separator, value
