"""Which service manager will keep the agent running, named before anything is installed.

The choice is `choose_manager`'s, so this check and `tentacle service --install` can never
disagree. Falling back to the user-mode supervisor is a WARNING with the reason the system's
own manager cannot be used: unlike systemd and the Windows SCM, nothing restarts it at boot.
"""

from __future__ import annotations

import asyncio
import sys

from tentacle_manager.platform.services.choose import ManagerKind, choose_manager
from tentacle_manager.platform.services.spec import Problem, ServiceError
from tentacle_manager.platform.services.systemd import SystemdManager
from tentacle_manager.platform.services.windows import WindowsServiceManager
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckResult, CheckState

_LABELS = {
    ManagerKind.SYSTEMD: "systemd",
    ManagerKind.WINDOWS: "the Windows Service Control Manager",
    ManagerKind.SUPERVISOR: "the built-in user-mode supervisor",
}


def service_manager_check() -> Check:
    return Check("service-manager", "Service manager", _service_manager, timeout=30.0)


async def _service_manager(context: CheckContext) -> CheckResult:
    try:
        manager = await asyncio.to_thread(choose_manager, context.service_manager)
    except ServiceError as error:
        return CheckResult(CheckState.FAILED, error.message, error.remedy)
    label = _LABELS[ManagerKind(manager.name)]
    if manager.name != ManagerKind.SUPERVISOR or context.service_manager is not None:
        return CheckResult(CheckState.PASSED, f"The agent will run as a service of {label}.")
    problems = await asyncio.to_thread(_native_problems)
    return CheckResult(
        CheckState.WARNING,
        f"The agent will run under {label}, because "
        f"{' '.join(problem.message for problem in problems)} Nothing starts the supervisor "
        "when the machine boots.",
        "For a service that starts at boot: " + " ".join(problem.remedy for problem in problems),
    )


def _native_problems() -> list[Problem]:
    """Why the operating system's own service manager was passed over."""
    native = WindowsServiceManager() if sys.platform == "win32" else SystemdManager()
    return native.check_prerequisites()
