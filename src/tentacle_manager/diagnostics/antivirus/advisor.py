"""The advisor in one call: which security products are here, what to exclude for a home, and
whether each product already excludes it.

`advise` is what the GUI awaits on its qasync loop: the probes (a psutil walk, a /proc scan,
dpkg or PowerShell) run in an executor, so the loop never waits on them. `assemble` is the
same without any I/O, for callers that already hold observations (tests, recorded output).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from tentacle_manager.diagnostics.antivirus.clamd import ClamdConfigProblem, clamd_coverage
from tentacle_manager.diagnostics.antivirus.coverage import Coverage, CoverageState
from tentacle_manager.diagnostics.antivirus.defender import defender_coverage, defender_status
from tentacle_manager.diagnostics.antivirus.detection import Detection, detect
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.observations import Observations, observe
from tentacle_manager.diagnostics.antivirus.products import Exclusions
from tentacle_manager.diagnostics.antivirus.recommendations import (
    PROCESS_CAVEATS,
    AgentAccount,
    Executable,
    Recommendation,
    account_of,
    local_executables,
    recommend,
)

DEFENDER_NOTES = (
    "Windows Server's automatic exclusions never appear in Defender's lists.",
    "Check one path as administrator with MpCmdRun.exe -CheckExclusion -path <path> "
    "(platform 4.18.1812.3 or later).",
)


@dataclass(frozen=True)
class Assessment:
    """One product found: why we think it is there, and its coverage of each recommendation
    (in the order of Advice.recommendations)."""

    detection: Detection
    coverage: tuple[Coverage, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Advice:
    home: PurePath
    account: AgentAccount | None
    recommendations: tuple[Recommendation, ...]
    assessments: tuple[Assessment, ...]
    not_checked: tuple[str, ...]
    clamd_config: Path | None = None  # the clamd.conf in use, for the snippet's instructions
    caveats: tuple[str, ...] = PROCESS_CAVEATS

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `tentacle antivirus --format json` (PascalCase, as Tentacle's)."""
        return {
            "Home": str(self.home),
            "AgentAccount": None if self.account is None else self.account.name,
            "Recommendations": [
                {
                    "Target": r.target.value,
                    "Path": str(r.path),
                    "Priority": r.priority,
                    "Reason": r.reason,
                }
                for r in self.recommendations
            ],
            "Products": [_product_dict(a, self.recommendations) for a in self.assessments],
            "NotChecked": list(self.not_checked),
            "ProcessCaveats": list(self.caveats),
        }


async def advise(
    home: Path,
    *,
    clamd_conf: Path | None = None,
    observations: Observations | None = None,
    executables: Sequence[Executable] | None = None,
) -> Advice:
    """Probe this machine (unless `observations` are given) and advise for `home`.

    Raises AdvisorError for bad input: a relative home, or an unreadable or invalid
    `clamd_conf`. What the machine itself gets wrong (an unreadable clamd.conf it uses,
    Defender output that breaks its format) is reported in the advice instead.
    """
    loop = asyncio.get_running_loop()
    if observations is None:
        observations = await loop.run_in_executor(
            None, functools.partial(observe, clamd_conf=clamd_conf)
        )
    if executables is None:
        executables = await loop.run_in_executor(None, local_executables)
    account = await loop.run_in_executor(None, account_of, home)
    return assemble(home, observations, executables, account, os.environ)


def assemble(
    home: PurePath,
    observations: Observations,
    executables: Sequence[Executable],
    account: AgentAccount | None,
    environment: Mapping[str, str],
) -> Advice:
    """`environment` expands the %VARIABLES% in Defender's lists (this machine's, normally)."""
    recommendations = tuple(recommend(home, executables))
    assessments = tuple(
        _assess(detection, recommendations, observations, account, environment)
        for detection in detect(observations)
    )
    configs = observations.clamd_configs
    return Advice(
        home,
        account,
        recommendations,
        assessments,
        observations.not_checked,
        clamd_config=configs[0].path if configs else None,
    )


def _assess(
    detection: Detection,
    recommendations: Sequence[Recommendation],
    seen: Observations,
    account: AgentAccount | None,
    environment: Mapping[str, str],
) -> Assessment:
    product = detection.product

    def every(state: CoverageState, detail: str, *notes: str) -> Assessment:
        return Assessment(detection, tuple(Coverage(state, detail) for _ in recommendations), notes)

    if product.exclusions is Exclusions.DEFENDER:
        if seen.windows is None:
            return every(CoverageState.UNKNOWN, "Defender's own report could not be read.")
        try:
            status = defender_status(seen.windows)
        except AdvisorError as error:
            return every(CoverageState.UNKNOWN, f"Defender's report does not read: {error}")
        notes = DEFENDER_NOTES
        if status.active and status.real_time is False:
            notes = (
                "Real-time protection is off: Defender is not scanning files on access now.",
                *notes,
            )
        coverage = (defender_coverage(status, r, environment) for r in recommendations)
        return Assessment(detection, tuple(coverage), notes)
    if product.exclusions is Exclusions.CLAMD:
        if not seen.clamd_configs:
            return every(CoverageState.UNKNOWN, "No clamd.conf was found to read.")
        config = seen.clamd_configs[0]
        if isinstance(config, ClamdConfigProblem):
            return every(CoverageState.UNKNOWN, config.message)
        running = any(process.name == "clamonacc" for process in seen.processes)
        coverage = (
            clamd_coverage(config, r, clamonacc_running=running, account=account)
            for r in recommendations
        )
        return Assessment(detection, tuple(coverage))
    if product.exclusions is Exclusions.CENTRAL:
        return every(
            CoverageState.MANAGED_CENTRALLY,
            "Made in the vendor's console, which this machine cannot read.",
            f"Ask for the exclusions in {product.where}.",
        )
    if product.exclusions is Exclusions.NONE:
        return every(
            CoverageState.NOT_APPLICABLE,
            "auditd records program starts rather than scanning files, so there is nothing to "
            "exclude; its exec rules still cost every process the agent starts.",
        )
    return every(
        CoverageState.UNKNOWN,
        "An unidentified program hooks file access; identify it by its pid to learn where its "
        "exclusions are made.",
    )


def _product_dict(
    assessment: Assessment, recommendations: Sequence[Recommendation]
) -> dict[str, Any]:
    product = assessment.detection.product
    return {
        "Key": product.key,
        "Name": product.name,
        "ExclusionsMadeIn": product.where,
        "Evidence": [
            {"Kind": e.kind.value, "Detail": e.detail} for e in assessment.detection.evidence
        ],
        "Coverage": [
            {
                "Path": str(r.path),
                "Target": r.target.value,
                "State": c.state.value,
                "Detail": c.detail,
            }
            for r, c in zip(recommendations, assessment.coverage, strict=True)
        ],
        "Notes": list(assessment.notes),
    }
