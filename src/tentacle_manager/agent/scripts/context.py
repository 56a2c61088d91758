"""What every script run needs from the agent around it."""

from __future__ import annotations

from dataclasses import dataclass

from tentacle_manager.agent.isolation import IsolationRegistry
from tentacle_manager.agent.process.shell import Shell
from tentacle_manager.agent.process.tree import Signaller
from tentacle_manager.agent.scripts.quarantine import Quarantine
from tentacle_manager.agent.scripts.settings import ScriptServiceSettings


@dataclass
class ScriptContext:
    settings: ScriptServiceSettings
    isolation: IsolationRegistry
    signaller: Signaller
    shell: Shell
    quarantine: Quarantine
    environment: dict[str, str]
