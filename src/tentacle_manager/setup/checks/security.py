"""Security products that scan or lock files under the home, pointed out before they bite.

Anti-virus and endpoint agents are the usual cause of tasks that fail or hang for no visible
reason (seed 001): they lock files in Work and Tools, or slow every process start. This check
only notices them (with the advisor's detection) and sends the user to the anti-virus advisor,
which knows each product's exclusions. The detector is a parameter so that a test can pass
its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tentacle_manager.diagnostics.antivirus.detection import detect
from tentacle_manager.diagnostics.antivirus.observations import observe
from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckResult, CheckState

ANTIVIRUS_HELP = "https://octopus.com/docs/support/troubleshooting-failed-or-hanging-tasks"


@dataclass(frozen=True)
class DetectedProduct:
    """A security product seen on this machine, and the evidence, e.g. "clamd (pid 812)"."""

    name: str
    evidence: str


SecurityDetector = Callable[[], Awaitable[Sequence[DetectedProduct]]]


def security_products_check(detector: SecurityDetector | None = None) -> Check:
    async def run(context: CheckContext) -> CheckResult:
        return _judge(await (detector or advisor_detection)(), context)

    return Check("security-products", "Anti-virus and security products", run)


async def advisor_detection() -> list[DetectedProduct]:
    """The anti-virus advisor's detection: processes, services, drivers, packages, fanotify
    groups and audit rules, each product with its evidence."""
    observations = await asyncio.to_thread(observe)
    return [
        DetectedProduct(
            found.product.name,
            "; ".join(f"{evidence.kind.value} {evidence.detail}" for evidence in found.evidence),
        )
        for found in detect(observations)
    ]


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
