"""Security products that scan or lock files under the home, pointed out before they bite.

Anti-virus and endpoint agents are the usual cause of tasks that fail or hang for no visible
reason (seed 001): they lock files in Work and Tools, or slow every process start. This check
only notices them and sends the user to the anti-virus advisor, which knows each product's
exclusions. It takes the detector as a parameter so that this layer does not depend on the
advisor: the GUI wires the advisor's detector in; the default is a scan of running process
names for well-known products, which finds nothing it does not know.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psutil

from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckResult, CheckState

ANTIVIRUS_HELP = "https://octopus.com/docs/support/troubleshooting-failed-or-hanging-tasks"

# process name (lower case, without ".exe") -> product
KNOWN_PROCESSES = {
    "clamd": "ClamAV",
    "clamonacc": "ClamAV on-access scanning",
    "falcond": "CrowdStrike Falcon",
    "falcon-sensor": "CrowdStrike Falcon",
    "msmpeng": "Microsoft Defender",
    "sentinelagent": "SentinelOne",
    "cbdefense": "VMware Carbon Black",
    "ir_agent": "Rapid7 Insight Agent",
    "ccsvchst": "Symantec Endpoint Protection",
    "coreserviceshell": "Trend Micro",
    "mfemms": "McAfee (Trellix) Endpoint Security",
}
KNOWN_PREFIXES = {"sophos": "Sophos"}  # Sophos runs many processes, all named sophos*


@dataclass(frozen=True)
class DetectedProduct:
    """A security product seen on this machine, and the evidence, e.g. "clamd (pid 812)"."""

    name: str
    evidence: str


SecurityDetector = Callable[[], Awaitable[Sequence[DetectedProduct]]]


def security_products_check(detector: SecurityDetector | None = None) -> Check:
    async def run(context: CheckContext) -> CheckResult:
        return _judge(await (detector or scan_processes)(), context)

    return Check("security-products", "Anti-virus and security products", run)


async def scan_processes() -> list[DetectedProduct]:
    """The known products among running processes, one entry per product."""
    return await asyncio.to_thread(_scan)


def _scan() -> list[DetectedProduct]:
    found: dict[str, list[str]] = {}
    for process in psutil.process_iter(["name"]):
        name = process.info["name"] or ""
        product = _product(name)
        if product is not None:
            found.setdefault(product, []).append(f"{name} (pid {process.pid})")
    return [DetectedProduct(product, ", ".join(seen)) for product, seen in sorted(found.items())]


def _product(process_name: str) -> str | None:
    key = process_name.lower().removesuffix(".exe")
    if key in KNOWN_PROCESSES:
        return KNOWN_PROCESSES[key]
    return next((p for prefix, p in KNOWN_PREFIXES.items() if key.startswith(prefix)), None)


def _judge(products: Sequence[DetectedProduct], context: CheckContext) -> CheckResult:
    if not products:
        return CheckResult(
            CheckState.PASSED,
            "No known anti-virus or endpoint security product was found running (products "
            "this check does not know are not detected).",
        )
    names = "; ".join(f"{product.name}: {product.evidence}" for product in products)
    layout = HomeLayout(context.home)
    folders = ", ".join(str(folder) for folder in (layout.work, layout.tools, layout.files))
    return CheckResult(
        CheckState.WARNING,
        f"Security software is running ({names}). It can lock or scan the agent's files and "
        "make tasks fail or hang.",
        f"Open the anti-virus advisor to see which exclusions to request for {folders} and "
        "the agent's processes.",
        ANTIVIRUS_HELP,
    )
