"""Administrator or root rights, and what can still be set up without them.

Tentacle's installer simply demands elevation. A user without it can still run an agent: a
per-user instance in their own folders, kept running by the user-mode supervisor. So a
missing right is a WARNING that says what changes, not a failure.
"""

from __future__ import annotations

import getpass

from tentacle_manager.platform.services.spec import is_root
from tentacle_manager.platform.services.windows import is_elevated
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckResult, CheckState


def rights_check() -> Check:
    return Check("rights", "Administrator rights", _rights)


async def _rights(context: CheckContext) -> CheckResult:
    user = getpass.getuser()
    if is_root() or is_elevated():
        return CheckResult(
            CheckState.PASSED,
            f"Running as {user} with administrator rights: a machine-wide instance and a "
            "system service can be set up.",
        )
    return CheckResult(
        CheckState.WARNING,
        f"Running as {user} without administrator rights: only a per-user instance can be set "
        "up, run by the user-mode supervisor (it does not start at boot), listening on a port "
        "of 1024 or above.",
        "For a machine-wide instance and a system service, run again as root (sudo) or, on "
        "Windows, with 'Run as administrator'.",
    )
