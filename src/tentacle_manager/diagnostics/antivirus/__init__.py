"""The anti-virus exclusion advisor: which security products are on this machine (with the
evidence), what to exclude for a Tentacle home, whether each product already excludes it,
the scripts and the request pack that make the change, and a canary that measures it.

Qt-free; the GUI awaits `advise` and `measure_interference` on its loop and renders `Advice`.
The OS probes themselves are in `tentacle_manager.platform.antivirus`.
"""

from tentacle_manager.diagnostics.antivirus.advisor import Advice, Assessment, advise, assemble
from tentacle_manager.diagnostics.antivirus.canary import (
    CanaryResult,
    FolderRun,
    PhaseTimes,
    measure_interference,
)
from tentacle_manager.diagnostics.antivirus.coverage import Coverage, CoverageState
from tentacle_manager.diagnostics.antivirus.detection import (
    Detection,
    Evidence,
    EvidenceKind,
    detect,
)
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.observations import Observations, observe
from tentacle_manager.diagnostics.antivirus.products import CATALOGUE, Exclusions, Product
from tentacle_manager.diagnostics.antivirus.recommendations import (
    AgentAccount,
    Executable,
    Recommendation,
    Target,
    local_executables,
    recommend,
)
from tentacle_manager.diagnostics.antivirus.scripts import (
    clamd_snippet,
    defender_script,
    request_pack,
    write_artefacts,
)

__all__ = [
    "CATALOGUE",
    "Advice",
    "AdvisorError",
    "AgentAccount",
    "Assessment",
    "CanaryResult",
    "Coverage",
    "CoverageState",
    "Detection",
    "Evidence",
    "EvidenceKind",
    "Exclusions",
    "Executable",
    "FolderRun",
    "Observations",
    "PhaseTimes",
    "Product",
    "Recommendation",
    "Target",
    "advise",
    "assemble",
    "clamd_snippet",
    "defender_script",
    "detect",
    "local_executables",
    "measure_interference",
    "observe",
    "recommend",
    "request_pack",
    "write_artefacts",
]
