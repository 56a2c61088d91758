"""The script service: ScriptServiceV2's verbs over isolation, processes and workspaces."""

from tentacle_manager.agent.scripts.service import ScriptService, ServiceStoppingError
from tentacle_manager.agent.scripts.settings import ScriptServiceSettings, SettingsError

__all__ = ["ScriptService", "ScriptServiceSettings", "ServiceStoppingError", "SettingsError"]
