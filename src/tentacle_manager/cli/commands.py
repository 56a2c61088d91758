"""Every verb of the `tentacle` program."""

from __future__ import annotations

from tentacle_manager.cli.verb import Verb
from tentacle_manager.cli.verbs import (
    agent,
    certificates,
    configuration,
    help,
    instances,
    scripts,
    service,
    tasks,
)

VERBS: list[Verb] = [
    *help.VERBS,
    *instances.VERBS,
    *certificates.VERBS,
    *configuration.VERBS,
    *service.VERBS,
    *agent.VERBS,
    *scripts.VERBS,
    *tasks.VERBS,
]
