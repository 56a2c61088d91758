"""Where the instance's secrets will be kept: the OS keyring, or the owner-only file.

The file fallback is safe only as long as the account is, and a copy of it carries the key
to every encrypted setting; users should know before they set up, not find out later.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tentacle_manager.instances.registry import machine_config_home
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE, diagnose
from tentacle_manager.setup.prerequisites import Check, CheckContext, CheckResult, CheckState

KEYRING_HELP = "https://keyring.readthedocs.io/en/latest/#configuring"


def secret_store_check() -> Check:
    return Check("secret-store", "Secret store (keyring)", _secret_store)


async def _secret_store(context: CheckContext) -> CheckResult:
    fallback = context.secret_fallback or _default_fallback()
    # keyring probes D-Bus and the like when it picks a backend: not on the loop
    report = await asyncio.to_thread(diagnose, context.secret_service, fallback)
    details = "\n".join(f"{name}: {value}" for name, value in report.items())
    if report["kind"] is None:
        return CheckResult(
            CheckState.FAILED, report["reason"], help_url=KEYRING_HELP, output=details
        )
    if report["kind"] == "keyring":
        return CheckResult(
            CheckState.PASSED, f"Secrets will be kept in the {report['store']}.", output=details
        )
    if report["override"]:
        return CheckResult(
            CheckState.PASSED,
            f"Secrets will be kept in an owner-only file ({fallback}), as {report['reason']}.",
            output=details,
        )
    return CheckResult(
        CheckState.WARNING,
        f"No OS keyring can keep secrets here (backend {report['backend']}), so they will be "
        f"kept in an owner-only file ({fallback}): as safe as this account, and a copy of it "
        "decrypts the instance's settings.",
        "Install and unlock an OS keyring (for example GNOME Keyring or KWallet through the "
        f"Secret Service), or set {OVERRIDE_VARIABLE}=file to accept the file store.",
        KEYRING_HELP,
        details,
    )


def _default_fallback() -> Path:
    """Where instances keep the file store, for a check made before any instance exists."""
    return machine_config_home() / "Tentacle" / "Secrets"
