"""Installing and running the agent as a service: one interface, three managers (systemd, the
Windows service manager, and a user-mode supervisor), and the choice between them."""

from tentacle_manager.platform.services.choose import ManagerKind, choose_manager
from tentacle_manager.platform.services.spec import (
    Problem,
    RestartPolicy,
    ServiceError,
    ServiceManager,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
)
from tentacle_manager.platform.services.supervisor import SupervisorManager
from tentacle_manager.platform.services.systemd import SystemdManager
from tentacle_manager.platform.services.windows import WindowsServiceManager

__all__ = [
    "ManagerKind",
    "Problem",
    "RestartPolicy",
    "ServiceError",
    "ServiceManager",
    "ServiceSpec",
    "ServiceSpecError",
    "ServiceStatus",
    "SupervisorManager",
    "SystemdManager",
    "WindowsServiceManager",
    "choose_manager",
]
