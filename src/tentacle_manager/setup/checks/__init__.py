"""The prerequisite checks for this operating system, one family per module."""

from __future__ import annotations

import sys

from tentacle_manager.setup.checks.clock import clock_check
from tentacle_manager.setup.checks.home import home_check
from tentacle_manager.setup.checks.port import port_check
from tentacle_manager.setup.checks.rights import rights_check
from tentacle_manager.setup.checks.secret_store import secret_store_check
from tentacle_manager.setup.checks.security import (
    DetectedProduct,
    SecurityDetector,
    security_products_check,
)
from tentacle_manager.setup.checks.service_manager import service_manager_check
from tentacle_manager.setup.checks.shells import bash_check, powershell_checks
from tentacle_manager.setup.prerequisites import Check

__all__ = ["DetectedProduct", "SecurityDetector", "standard_checks"]


def standard_checks(*, security_detector: SecurityDetector | None = None) -> list[Check]:
    """Every check that applies here, in the order a user reads them.

    `security_detector` replaces the built-in process-name scan; the GUI passes the anti-virus
    advisor's detector, which knows more products and how to exclude folders from each.
    """
    shells = (
        powershell_checks() if sys.platform == "win32" else [bash_check(), *powershell_checks()]
    )
    return [
        rights_check(),
        *shells,
        service_manager_check(),
        port_check(),
        home_check(),
        secret_store_check(),
        clock_check(),
        security_products_check(security_detector),
    ]
