"""Which service manager applies on this machine, or the one the user insists on."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from tentacle_manager.platform.services.spec import ServiceError, ServiceManager
from tentacle_manager.platform.services.supervisor import SupervisorManager
from tentacle_manager.platform.services.systemd import SystemdManager
from tentacle_manager.platform.services.windows import WindowsServiceManager


class ManagerKind(StrEnum):
    SYSTEMD = "systemd"
    WINDOWS = "windows"
    SUPERVISOR = "supervisor"


_FACTORIES: dict[ManagerKind, Callable[[], ServiceManager]] = {
    ManagerKind.WINDOWS: WindowsServiceManager,
    ManagerKind.SYSTEMD: SystemdManager,
    ManagerKind.SUPERVISOR: SupervisorManager,
}


def choose_manager(
    prefer: str | None = None,
    factories: dict[ManagerKind, Callable[[], ServiceManager]] | None = None,
) -> ServiceManager:
    """The first manager, in the order Windows, systemd, supervisor, whose prerequisites hold.

    `prefer` forces one kind and raises ServiceError when it cannot work here, rather than
    quietly falling back to another: a user who asked for systemd should not end up with a
    service that does not start at boot. `factories` lets tests replace the managers.
    """
    factories = factories or _FACTORIES
    if prefer is not None:
        return _forced(_kind(prefer), factories)
    problems = []
    for kind in ManagerKind.WINDOWS, ManagerKind.SYSTEMD, ManagerKind.SUPERVISOR:
        manager = factories[kind]()
        found = manager.check_prerequisites()
        if not found:
            return manager
        problems += found
    raise ServiceError.from_problems(problems)


def _kind(prefer: str) -> ManagerKind:
    try:
        return ManagerKind(prefer.lower())
    except ValueError:
        choices = ", ".join(kind.value for kind in ManagerKind)
        raise ServiceError(
            f"prefer: {prefer!r} is not a service manager.", f"Choose one of: {choices}."
        ) from None


def _forced(
    kind: ManagerKind, factories: dict[ManagerKind, Callable[[], ServiceManager]]
) -> ServiceManager:
    manager = factories[kind]()
    problems = manager.check_prerequisites()
    if problems:
        raise ServiceError.from_problems(problems)
    return manager
