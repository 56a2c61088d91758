"""Changing an instance's proxies, as Tentacle Manager's proxy wizard does (reference 9, 6.3),
with two of its defects fixed: the service is stopped and started again only if it was
running (Tentacle always starts it), and the polling proxy's password is masked as well as the
web proxy's (Tentacle masks only the latter, 6.7)."""

from __future__ import annotations

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.tentacle_config import ProxyKind, TentacleConfig
from tentacle_manager.setup.answers import ProxyAnswers, ProxyMode, proxy_problems
from tentacle_manager.setup.plan import Step, proxy_argv


def current_proxy(config: TentacleConfig, kind: ProxyKind) -> ProxyAnswers:
    """The stored proxy as the form shows it; the password stays stored, never shown."""
    settings = config.proxy(kind)
    if settings.host:
        mode = ProxyMode.CUSTOM
    elif settings.use_default_proxy:
        mode = ProxyMode.DEFAULT
    else:
        mode = ProxyMode.NONE
    return ProxyAnswers(mode, settings.host or "", str(settings.port), settings.username or "")


def plan_proxy_change(
    instance: Instance,
    web: ProxyAnswers,
    polling: ProxyAnswers | None,
    *,
    manager: str,
    running: bool,
) -> tuple[Step, ...]:
    """The commands; raises ProblemsError naming the bad fields (web_proxy_host, ...)."""
    problems = {f"web_{name}": rule for name, rule in proxy_problems(web).items()}
    if polling is not None:
        problems |= {f"polling_{name}": rule for name, rule in proxy_problems(polling).items()}
    if problems:
        raise ProblemsError(problems)
    selector = (
        ("--instance", instance.name) if instance.name else ("--config", str(instance.config_path))
    )
    secrets = tuple(proxy.password for proxy in (web, polling) if proxy and proxy.password)
    steps = [Step("Set the web proxy", proxy_argv("proxy", selector, web), secrets)]
    if polling is not None:
        steps.append(
            Step("Set the polling proxy", proxy_argv("polling-proxy", selector, polling), secrets)
        )
    if running:
        service = ("service", *selector, "--manager", manager)
        steps.insert(0, Step("Stop the service", (*service, "--stop")))
        steps.append(Step("Start the service", (*service, "--start")))
    return tuple(steps)
