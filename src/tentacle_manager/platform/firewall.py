"""The inbound firewall rule a listening Tentacle needs, as the commands that add and remove it.

Windows: netsh, as Tentacle Manager runs it, but named per instance so that a second run or a
second instance neither duplicates nor deletes another's rule (Tentacle's one shared name
does both, reference 6.2). Linux: ufw when it is installed; other firewalls are left to the
admin, and the wizard says so. Only the commands are built here: the installer runs them.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

RULE_NAME = "Octopus Deploy Tentacle"


@dataclass(frozen=True)
class FirewallRule:
    tool: str  # what manages the firewall, for the review page
    add: tuple[str, ...]
    remove: tuple[str, ...]


def firewall_rule(instance: str, port: int, platform: str = sys.platform) -> FirewallRule | None:
    """The rule for this machine, or None when there is no firewall tool this knows."""
    name = f"{RULE_NAME} ({instance})"
    if platform == "win32":
        selector = (f"name={name}", "protocol=TCP", f"localport={port}")
        return FirewallRule(
            "Windows Firewall (netsh)",
            ("netsh", "advfirewall", "firewall", "add", "rule", *selector[:1], "dir=in",
             "action=allow", *selector[1:]),
            ("netsh", "advfirewall", "firewall", "delete", "rule", *selector),
        )  # fmt: skip
    if shutil.which("ufw") is not None:
        return FirewallRule(
            "ufw",
            ("ufw", "allow", f"{port}/tcp", "comment", name),
            ("ufw", "delete", "allow", f"{port}/tcp"),
        )
    return None
