"""Every verb of the `tentacle` program, found without importing them all.

A command runs one verb, so only that verb's module is imported: `tentacle version` does not
pay for the HTTP client, the agent and pydantic's models (about a second on a small VM).
`test_cli_catalogue` checks that this table and the modules' VERBS lists agree.
"""

from __future__ import annotations

import importlib

from tentacle_manager.cli.verb import Verb

# command word or alias -> the module in tentacle_manager.cli.verbs that defines it
VERB_MODULES: dict[str, str] = {
    "help": "help",
    "h": "help",
    "?": "help",
    "version": "help",
    "create-instance": "instances",
    "delete-instance": "instances",
    "list-instances": "instances",
    "new-certificate": "certificates",
    "import-certificate": "certificates",
    "show-thumbprint": "certificates",
    "configure": "configuration",
    "proxy": "configuration",
    "polling-proxy": "configuration",
    "show-configuration": "configuration",
    "service": "service",
    "agent": "agent",
    "run": "agent",
    "livez": "agent",
    "run-script": "scripts",
    "list-scripts": "scripts",
    "cancel": "scripts",
    "abandon": "scripts",
    "mutexes": "scripts",
    "run-task": "tasks",
    "antivirus": "antivirus",
    "av-advisor": "antivirus",
    "check-connectivity": "troubleshooting",
    "fire-drill": "troubleshooting",
    "support-bundle": "troubleshooting",
    "check-prerequisites": "prerequisites",
}


def verbs_of(module: str) -> list[Verb]:
    return list(importlib.import_module(f"tentacle_manager.cli.verbs.{module}").VERBS)


def find(word: str) -> Verb | None:
    module = VERB_MODULES.get(word)
    if module is None:
        return None
    return next(v for v in verbs_of(module) if word == v.name or word in v.aliases)


def all_verbs() -> list[Verb]:
    """Every verb, for the general help: the one time all modules are loaded."""
    return [verb for module in dict.fromkeys(VERB_MODULES.values()) for verb in verbs_of(module)]
