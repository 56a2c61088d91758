"""Deleting an instance: the service, optionally the firewall rule and the files, and an honest
list of what stays.

Tentacle Manager's delete wizard stops and uninstalls the service and unregisters the instance
(reference 10, 6.3) and leaves the rest without a word. Here the admin chooses whether the home
folder (configuration, certificate, logs, work) and the firewall rule go too, and the wizard
says exactly what stays: the applications folder, the server's record of the machine, anything
it could not remove.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import CONFIG_KEY_SECRET, Instance
from tentacle_manager.instances.secrets import SecretStoreError
from tentacle_manager.platform.firewall import firewall_rule
from tentacle_manager.setup.install import (
    InstallResult,
    Listener,
    Outcome,
    OutputLine,
    remove_paths,
    run_in_order,
)
from tentacle_manager.setup.plan import Step


@dataclass(frozen=True)
class RemovalChoices:
    remove_files: bool = False  # the home folder, the config file and the instance's secrets
    remove_firewall_rule: bool = True


@dataclass(frozen=True)
class RemovalPlan:
    instance: Instance
    steps: tuple[Step, ...]
    paths: tuple[Path, ...]  # removed after the commands succeed, when chosen
    kept: tuple[str, ...]  # what stays, in words, for the wizard to say before and after

    def script(self) -> str:
        return "\n".join(step.display() for step in self.steps)


def plan_removal(instance: Instance, choices: RemovalChoices, manager: str) -> RemovalPlan:
    """The steps and what stays. Blocking (reads the config): run it in an executor."""
    name = instance.name
    selector = ("--instance", name) if name else ("--config", str(instance.config_path))
    steps = [
        Step(
            "Stop and uninstall the service",
            ("service", *selector, "--stop", "--uninstall", "--manager", manager),
        )
    ]
    kept: list[str] = []
    try:
        config = instance.config()
    except InstanceError as error:
        config = None
        kept.append(f"Anything the configuration names: it cannot be read ({error.one_line()}).")
    port = config.port if config is not None else None
    rule = firewall_rule(name or "Tentacle", port) if port is not None else None
    if rule is not None and choices.remove_firewall_rule:
        steps.append(
            Step(f"Remove the firewall rule ({rule.tool})", rule.remove, is_tentacle=False)
        )
    elif rule is not None:
        kept.append(f"The firewall rule for port {port} ({rule.tool}).")
    if name:
        steps.append(Step("Unregister the instance", ("delete-instance", *selector)))
    paths: list[Path] = []
    home = config.home if config is not None else None
    if choices.remove_files:
        paths += [instance.config_path, instance.secret_fallback]
        paths += [home] if home is not None else []
    else:
        kept.append(f"The configuration file {instance.config_path}.")
        if home is not None:
            kept.append(f"The home folder {home} (certificate, logs and script work folders).")
    if config is not None:
        kept.append(
            f"The applications folder {config.application_directory} and what was deployed to it."
        )
    kept.append(
        "The machine's registration on the Octopus Server: remove the deployment target in "
        "the Octopus web portal."
    )
    return RemovalPlan(instance, tuple(steps), tuple(paths), tuple(kept))


async def remove(plan: RemovalPlan, listener: Listener) -> InstallResult:
    """Run the steps, stopping at the first failure (nothing to roll back: a half-deleted
    instance is finished by running the wizard again), then remove the chosen files."""
    failed = await run_in_order(plan.steps, (), listener)
    if failed is not None:
        return InstallResult(Outcome.FAILED, failed, plan.kept)
    loop = asyncio.get_running_loop()
    not_removed = await loop.run_in_executor(None, _remove_files, plan)
    for line in not_removed:
        listener(OutputLine(f"Not removed: {line}", True))
    for line in plan.kept:
        listener(OutputLine(f"Stays: {line}"))
    return InstallResult(Outcome.SUCCEEDED, None, (*not_removed, *plan.kept))


def _remove_files(plan: RemovalPlan) -> list[str]:
    failures = []
    try:
        plan.instance.secrets.delete(CONFIG_KEY_SECRET)  # a keyring entry, or the file's entry
    except SecretStoreError as error:
        failures.append(f"the instance's secret key: {error}")
    failures += [f"{path}: {error}" for path, error in remove_paths(list(plan.paths))]
    return failures
