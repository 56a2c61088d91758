"""Which security products are on this machine, each with the evidence that gave it away.

Detection is a pure function of what the probes saw, so it can be tested on recorded
observations as well as on real ones. Every finding names what matched (the pid and image of
a process, a service and its state, a driver, a package and its version, a config file, an
audit rule, a fanotify group): product lists mislabel names, and a person must be able to
see why the advisor thinks a product is there. A service counts only while it runs: Windows
installs some (Defender for Endpoint's Sense) stopped on every machine, and uninstallers leave
others behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from tentacle_manager.diagnostics.antivirus.clamd import ClamdConfig, ClamdConfigProblem
from tentacle_manager.diagnostics.antivirus.observations import Observations
from tentacle_manager.diagnostics.antivirus.products import (
    AUDITD,
    CATALOGUE,
    CLAMAV,
    DEFENDER,
    UNIDENTIFIED_FANOTIFY,
    Product,
)
from tentacle_manager.platform.antivirus.windows import WindowsSnapshot


class EvidenceKind(StrEnum):
    PROCESS = "process"
    SERVICE = "service"
    DRIVER = "driver"
    PACKAGE = "package"
    STATUS = "status"  # the product's own report on itself
    CONFIG = "config"
    AUDIT_RULE = "audit rule"
    FANOTIFY = "fanotify"


@dataclass(frozen=True)
class Evidence:
    kind: EvidenceKind
    detail: str


@dataclass(frozen=True)
class Detection:
    product: Product
    evidence: tuple[Evidence, ...]


def detect(seen: Observations) -> list[Detection]:
    """The products found, in catalogue order, then auditd and unidentified fanotify users."""
    found = [
        Detection(product, evidence)
        for product in CATALOGUE
        if (evidence := tuple(_evidence_for(product, seen)))
    ]
    if seen.audit_rules:
        rules = tuple(
            Evidence(EvidenceKind.AUDIT_RULE, f"{r.source}: {r.text}") for r in seen.audit_rules
        )
        found.append(Detection(AUDITD, rules))
    strangers = tuple(
        Evidence(EvidenceKind.FANOTIFY, group.describe())
        for group in seen.fanotify
        if not any(product.signature("processes", group.process) for product in CATALOGUE)
    )
    if strangers:
        found.append(Detection(UNIDENTIFIED_FANOTIFY, strangers))
    return found


def _evidence_for(product: Product, seen: Observations) -> Iterator[Evidence]:
    for process in seen.processes:
        if product.signature("processes", process.name):
            yield Evidence(EvidenceKind.PROCESS, process.describe())
    for service in seen.services:
        if service.running and product.signature("services", service.name):
            yield Evidence(EvidenceKind.SERVICE, f"{service.name} ({service.state})")
    for driver in seen.drivers:
        if product.signature("drivers", driver):
            yield Evidence(EvidenceKind.DRIVER, driver)
    for package in seen.packages:
        if product.signature("packages", package.name):
            yield Evidence(
                EvidenceKind.PACKAGE, f"{package.name} {package.version} ({package.manager})"
            )
    for group in seen.fanotify:
        if product.signature("processes", group.process):
            yield Evidence(EvidenceKind.FANOTIFY, group.describe())
    if product is DEFENDER and seen.windows is not None:
        yield Evidence(EvidenceKind.STATUS, _defender_words(seen.windows))
    if product is CLAMAV:
        for config in seen.clamd_configs:
            yield Evidence(EvidenceKind.CONFIG, _config_words(config))


def _defender_words(windows: WindowsSnapshot) -> str:
    """Defender ships with Windows, so on Windows it is always reported, running or not."""
    status = windows.defender_status
    if status is not None:
        return (
            f"Get-MpComputerStatus: AMRunningMode {status.get('AMRunningMode')}, "
            f"AMProductVersion {status.get('AMProductVersion')}"
        )
    return f"Get-MpComputerStatus failed: {windows.defender_status_error or 'no answer'}"


def _config_words(config: ClamdConfig | ClamdConfigProblem) -> str:
    if isinstance(config, ClamdConfigProblem):
        return f"{config.path}: {config.message}"
    watched = ", ".join(f"{s.name} {s.value} (line {s.line})" for s in config.watched)
    if watched:
        return f"{config.path}: on-access scanning watches {watched}"
    return f"{config.path}: no OnAccessIncludePath or OnAccessMountPath (on-access not configured)"
