"""What the setup wizard asks, with Tentacle Manager's defaults and stricter rules.

Each page's fields are checked by `problems(page)`, which names every bad field and the rule
it breaks, so a page can say all that is wrong at once and the install never starts from a
half-valid answer. Where Tentacle Manager is lax (reference 5.5, 5.9, 14) the rules here are
tighter: ports must be 1-65535, not just digits; a server thumbprint is exactly 40 hex
characters (Tentacle's `[A-z0-9]{30,50}` also takes `[`, `^` and backtick); a URL needs a host.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.instances.registry import DEFAULT_INSTANCE_NAME

DEFAULT_LISTEN_PORT = 10933
DEFAULT_SERVER_COMMS_PORT = 10943
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")


class Style(StrEnum):
    LISTENING = "listening"
    POLLING = "polling"


class ProxyMode(StrEnum):
    NONE = "none"
    DEFAULT = "default"  # the system's proxy
    CUSTOM = "custom"


class Page(StrEnum):
    """The wizard's pages that have fields, in the order a user meets them."""

    COMMUNICATION = "communication"
    STORAGE = "storage"
    LISTENING = "listening"
    POLLING = "polling"


@dataclass(frozen=True)
class ProxyAnswers:
    mode: ProxyMode = ProxyMode.NONE
    host: str = ""
    port: str = "80"
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class SetupAnswers:
    """Fields as typed (ports stay text until checked, so a bad one can be named, not lost)."""

    instance: str
    home: Path
    app_dir: Path
    style: Style = Style.LISTENING
    listen_port: str = str(DEFAULT_LISTEN_PORT)
    firewall_rule: bool = True
    server_thumbprint: str = ""
    server_url: str = "https://"
    server_comms_port: str = str(DEFAULT_SERVER_COMMS_PORT)
    api_key: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    proxy: ProxyAnswers = ProxyAnswers()
    local_only: bool = False  # "Try it locally": listens on 127.0.0.1, trusts no server yet

    @classmethod
    def defaults(
        cls, instance: str = DEFAULT_INSTANCE_NAME, admin: bool | None = None
    ) -> SetupAnswers:
        home, app_dir = default_folders(instance, is_admin() if admin is None else admin)
        return cls(instance=instance, home=home, app_dir=app_dir)

    @classmethod
    def try_locally(cls, instance: str) -> SetupAnswers:
        """A per-user instance on this machine only: the manager can run scripts on it at once,
        and a server can be trusted later with `tentacle configure --trust`."""
        home, app_dir = default_folders(instance, admin=False)
        return cls(instance, home, app_dir, firewall_rule=False, local_only=True)

    def with_instance(self, instance: str) -> SetupAnswers:
        """Renamed, with the folders following the name while they are still the defaults."""
        admin = is_admin()
        if (self.home, self.app_dir) != default_folders(self.instance, admin):
            return replace(self, instance=instance)
        home, app_dir = default_folders(instance, admin)
        return replace(self, instance=instance, home=home, app_dir=app_dir)

    @property
    def config_path(self) -> Path:
        """Tentacle's rule: Tentacle.config for the default instance, else Tentacle-<name>."""
        suffix = "" if self.instance == DEFAULT_INSTANCE_NAME else f"-{self.instance}"
        return self.home / f"Tentacle{suffix}.config"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that are masked wherever they are shown."""
        values = (self.api_key, self.password, self.proxy.password)
        return tuple(value for value in values if value)

    def problems(self, page: Page) -> dict[str, str]:
        """Every bad field of `page`, named with its rule; empty when the page is fine."""
        return _CHECKS[page](self)

    def check(self, pages: tuple[Page, ...] | None = None) -> None:
        """Raise ProblemsError naming every bad field of the pages this style shows."""
        found: dict[str, str] = {}
        for page in pages or self.pages():
            found.update(self.problems(page))
        if found:
            raise ProblemsError(found)

    def pages(self) -> tuple[Page, ...]:
        style_page = Page.LISTENING if self.style is Style.LISTENING else Page.POLLING
        return (Page.COMMUNICATION, Page.STORAGE, style_page)


def default_folders(instance: str, admin: bool) -> tuple[Path, Path]:
    """Tentacle's defaults: C:\\Octopus and C:\\Octopus\\Applications on Windows (the drive of
    Program Files), /etc/octopus and /home/Octopus/Applications for root on Linux, and folders
    in the user's own home otherwise; other instances get a sub-folder of their name."""
    if sys.platform == "win32":
        drive = Path(os.environ.get("PROGRAMFILES", "C:\\Program Files")).anchor or "C:\\"
        home, apps = Path(drive) / "Octopus", Path(drive) / "Octopus" / "Applications"
    elif admin:
        home, apps = Path("/etc/octopus"), Path("/home/Octopus/Applications")
    else:
        data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        home, apps = data / "octopus", Path.home() / "Octopus" / "Applications"
    if instance != DEFAULT_INSTANCE_NAME:
        return home / instance, apps / instance
    return home, apps


def first_free_name(taken: set[str]) -> str:
    """The default instance's name if it is free, else Tentacle2, Tentacle3, ..."""
    if DEFAULT_INSTANCE_NAME not in taken:
        return DEFAULT_INSTANCE_NAME
    return next(
        f"{DEFAULT_INSTANCE_NAME}{n}"
        for n in range(2, 10_000)
        if f"{DEFAULT_INSTANCE_NAME}{n}" not in taken
    )


def is_admin() -> bool:
    if sys.platform == "win32":
        import ctypes

        return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
    return os.geteuid() == 0


# --- the rules, page by page ---------------------------------------------------------------------


def _communication(answers: SetupAnswers) -> dict[str, str]:
    if not _INSTANCE_NAME.fullmatch(answers.instance):
        return {
            "instance": "must be 1 to 64 letters, digits, spaces, dots, dashes or underscores, "
            "starting with a letter or digit"
        }
    return {}


def _storage(answers: SetupAnswers) -> dict[str, str]:
    found = {}
    for name, folder in (("home", answers.home), ("app_dir", answers.app_dir)):
        if not str(folder).strip() or not folder.is_absolute():
            found[name] = "must be an absolute folder path"
        elif folder.exists() and not folder.is_dir():
            found[name] = f"{folder} exists and is not a folder"
    return found


def _listening(answers: SetupAnswers) -> dict[str, str]:
    found = _port("listen_port", answers.listen_port)
    thumbprint = answers.server_thumbprint.strip()
    if answers.local_only and not thumbprint:
        return found  # a server is trusted later, if ever
    if thumbprint.upper().startswith("API"):
        found["server_thumbprint"] = (
            "this is an API key, not an Octopus Server certificate thumbprint"
        )
    elif not _THUMBPRINT.fullmatch(thumbprint):
        found["server_thumbprint"] = (
            "must be the Octopus Server certificate thumbprint: 40 hexadecimal characters, "
            "shown on the server's Listening Tentacle setup page"
        )
    return found


def _polling(answers: SetupAnswers) -> dict[str, str]:
    found = _port("server_comms_port", answers.server_comms_port)
    url = urlsplit(answers.server_url.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        found["server_url"] = (
            "must be the Octopus Server's address, such as https://octopus.example.com"
        )
    if answers.api_key:
        if not answers.api_key.startswith("API-"):
            found["api_key"] = (
                "does not start with API- as Octopus API keys do: it may be something else "
                "copied from the Octopus portal"
            )
    else:
        if not answers.username.strip():
            found["username"] = "enter a username, or an API key instead"
        if not answers.password:
            found["password"] = "enter the password of that account, or an API key instead"
    found.update(proxy_problems(answers.proxy))
    return found


def proxy_problems(proxy: ProxyAnswers) -> dict[str, str]:
    """The proxy's bad fields (proxy_host, proxy_port, proxy_username) with their rules."""
    if proxy.mode is not ProxyMode.CUSTOM:
        return {}
    found = {f"proxy_{name}": rule for name, rule in _port("port", proxy.port).items()}
    if not proxy.host.strip() or any(c in proxy.host for c in " /\\"):
        found["proxy_host"] = "must be the proxy's host name or IP address"
    if proxy.password and not proxy.username.strip():
        found["proxy_username"] = "a proxy password needs a username"
    return found


def _port(name: str, text: str) -> dict[str, str]:
    if text.strip().isdigit() and 1 <= int(text) <= 65535:
        return {}
    return {name: f"{text!r} is not a TCP port: it must be a whole number from 1 to 65535"}


_CHECKS = {
    Page.COMMUNICATION: _communication,
    Page.STORAGE: _storage,
    Page.LISTENING: _listening,
    Page.POLLING: _polling,
}
