"""Tentacle's settings, typed: key names, defaults, parsing rules, and configure's changes.

Key names, defaults and value encodings are Tentacle's (TentacleConfiguration.cs,
HomeConfiguration.cs, ProxyConfiguration.cs, PollingProxyConfiguration.cs), so a config file
moves between the two products. Where we differ it is stricter: ports are range-checked,
thumbprints are stored upper case (so removing trust ignores case), and a trusted-server entry
with an unknown field or style is an error instead of being dropped on the next save.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from tentacle_manager.instances.config_file import Settings, SettingsFile
from tentacle_manager.instances.errors import ConfigFileError, SettingError
from tentacle_manager.instances.home import HomeLayout

HOME_KEY = "Octopus.Home"
PORT_KEY = "Tentacle.Services.PortNumber"
LISTEN_IP_KEY = "Tentacle.Services.ListenIP"
NO_LISTEN_KEY = "Tentacle.Services.NoListen"
TRUSTED_SERVERS_KEY = "Tentacle.Communication.TrustedOctopusServers"
POLLING_CONNECTION_COUNT_KEY = "Tentacle.Communication.PollingConnectionCount"
APPLICATION_DIRECTORY_KEY = "Tentacle.Deployment.ApplicationDirectory"
CERTIFICATE_KEY = "Tentacle.Certificate"
CERTIFICATE_THUMBPRINT_KEY = "Tentacle.CertificateThumbprint"
DEFAULT_PORT = 10933
DEFAULT_PROXY_PORT = 80
FIX_VALUE = "Correct or remove the value of this key in the file."

_INT32 = re.compile(r"\s*[+-]?[0-9]+\s*")
_THUMBPRINT = re.compile(r"[0-9A-F]{40}")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class ValueCipher(Protocol):
    """Seals sensitive values before they reach the file (invariant 4).

    `decrypt` raises ValueError (or a subclass) when a value cannot be decrypted: a wrong key
    or a damaged value. Its message must not contain the value.
    """

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...


class CommunicationStyle(IntEnum):
    """Octopus.Client's values: the integers are what the file and show-configuration hold."""

    NONE = 0
    TENTACLE_PASSIVE = 1
    TENTACLE_ACTIVE = 2


_STYLE_NAMES = {
    "None": CommunicationStyle.NONE,
    "TentaclePassive": CommunicationStyle.TENTACLE_PASSIVE,
    "TentacleActive": CommunicationStyle.TENTACLE_ACTIVE,
}


class ProxyKind(StrEnum):
    """Which proxy: `proxy` sets the general one, `polling-proxy` the one used to poll."""

    HTTP = "Octopus.Proxy"
    POLLING = "Octopus.Server.Proxy"

    def key(self, name: str) -> str:
        return f"{self.value}.{name}"


def _style(value: object) -> CommunicationStyle:
    """Tentacle writes integers and also reads names; null means None, as in its converter."""
    if value is None:
        return CommunicationStyle.NONE
    if isinstance(value, str) and value in _STYLE_NAMES:
        return _STYLE_NAMES[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in set(CommunicationStyle):
        return CommunicationStyle(value)
    raise ValueError(
        "must be 0 (None), 1 (TentaclePassive) or 2 (TentacleActive), or one of those names"
    )


def _thumbprint(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a thumbprint must be non-blank text")
    return value.strip().upper()


def _absolute_uri(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"{value!r} is not a valid URI ({error})") from None
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"{value!r} must be an absolute URI such as https://octopus:10943")
    return value


def _upper(value: str | None) -> str | None:
    return None if value is None else value.upper()


class TrustedServer(BaseModel):
    """One entry of TrustedOctopusServers, with Tentacle's JSON names and field order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thumbprint: Annotated[str, BeforeValidator(_thumbprint)] = Field(alias="Thumbprint")
    communication_style: Annotated[CommunicationStyle, BeforeValidator(_style)] = Field(
        CommunicationStyle.NONE, alias="CommunicationStyle"
    )
    address: Annotated[str | None, AfterValidator(_absolute_uri)] = Field(None, alias="Address")
    squid: Annotated[str | None, AfterValidator(_upper)] = Field(None, alias="Squid")
    subscription_id: str | None = Field(None, alias="SubscriptionId")

    @classmethod
    def of(
        cls,
        thumbprint: str,
        style: CommunicationStyle = CommunicationStyle.TENTACLE_PASSIVE,
        address: str | None = None,
        subscription_id: str | None = None,
    ) -> TrustedServer:
        """Build an entry from caller input; a bad field is a SettingError naming it."""
        try:
            return cls.model_validate(
                {
                    "Thumbprint": thumbprint,
                    "CommunicationStyle": style,
                    "Address": address,
                    "SubscriptionId": subscription_id,
                }
            )
        except ValidationError as error:
            raise SettingError(
                TRUSTED_SERVERS_KEY, f"The trusted server is not valid: {_describe(error)}."
            ) from None

    def is_same_endpoint(self, other: TrustedServer) -> bool:
        """Tentacle's identity: thumbprint ignoring case, plus the address compared as a URI."""
        return self.thumbprint == other.thumbprint and _uri_identity(self.address) == (
            _uri_identity(other.address)
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


def _uri_identity(address: str | None) -> str | None:
    """Like .NET's Uri.Compare on AbsoluteUri ignoring case: default ports and '/' are implied."""
    if address is None:
        return None
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.hostname}:{port}{parts.path or '/'}{query}".casefold()


_SERVERS = TypeAdapter(list[TrustedServer] | None)


def _describe(error: ValidationError) -> str:
    """Pydantic's errors as 'entry 2, CommunicationStyle: must be ...' clauses."""
    clauses = []
    for item in error.errors():
        where = ", ".join(
            f"entry {part + 1}" if isinstance(part, int) else str(part) for part in item["loc"]
        )
        message = item["msg"].removeprefix("Value error, ")
        clauses.append(f"{where}: {message}" if where else message)
    return "; ".join(clauses)


@dataclass(frozen=True)
class StoredCertificate:
    thumbprint: str
    pfx_base64: str = field(repr=False)


@dataclass(frozen=True)
class ProxySettings:
    use_default_proxy: bool
    host: str | None
    port: int
    username: str | None
    password: str | None = field(repr=False)


@dataclass(frozen=True)
class ConfigureRequest:
    """What one `configure` asks for; None (or empty) means the option was not given."""

    reset_trust: bool = False
    remove_trust: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()
    home: Path | None = None
    app: Path | None = None
    port: int | None = None
    no_listen: bool | None = None
    listen_ip: str | None = None
    polling_connection_count: int | None = None


@dataclass(frozen=True)
class ProxyRequest:
    """What one `proxy` or `polling-proxy` asks for, as the option texts were given.

    None means the option was not given; an empty username or password clears it, and an
    empty port means 80, as in Tentacle.
    """

    enable: bool = False
    host: str | None = None
    port: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_polling_connection_count(text: str) -> int:
    """Tentacle's parsing of --pollingConnectionCount, with its messages."""
    if not _INT32.fullmatch(text) or not _fits_int32(int(text)):
        raise SettingError(
            POLLING_CONNECTION_COUNT_KEY,
            f"The polling connection count '{text}' is not a valid whole number. Specify a "
            "positive integer, e.g. --pollingConnectionCount=5",
        )
    count = int(text)
    _check_polling_connection_count(count)
    return count


def _check_polling_connection_count(count: int) -> None:
    if count < 1:
        raise SettingError(
            POLLING_CONNECTION_COUNT_KEY,
            f"The polling connection count must be greater than 0, but was {count}.",
        )


def _fits_int32(value: int) -> bool:
    return -(2**31) <= value < 2**31


def _check_port(field_name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise SettingError(
            field_name, f"Port {port} is not valid for {field_name}: it must be from 1 to 65535."
        )


def default_application_directory() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("SYSTEMDRIVE", "C:") + "\\", "Octopus", "Applications")
    return Path("/home/Octopus/Applications")


def nest_keys(flat: Mapping[str, object]) -> dict[str, Any]:
    """{'A.B': 1, 'A.C': 2} -> {'A': {'B': 1, 'C': 2}}, siblings sorted, as show-configuration."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"Key '{key}' nests under '{part}', which already holds a value.")
        node[leaf] = value
    return _sorted_tree(tree)


def _sorted_tree(node: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _sorted_tree(value) if isinstance(value, dict) else value
        for key, value in sorted(node.items())
    }


class TentacleConfig:
    """Tentacle's settings, typed, over one `Settings`: a snapshot to read, or an edit's values.

    Reading a value that does not parse raises a ConfigFileError with Tentacle's wording plus
    the file, line and key. Setters check their value first and raise a SettingError naming
    the key and the rule, so an edit that fails saves nothing. Sensitive values go through the
    cipher; a view opened without one can do everything else.
    """

    def __init__(self, settings: Settings, cipher: ValueCipher | None = None) -> None:
        self._settings = settings
        self._cipher = cipher

    @property
    def path(self) -> Path:
        return self._settings.path

    # Reading

    @property
    def home(self) -> Path | None:
        """Octopus.Home; a relative value is taken from the config file's folder, as Tentacle."""
        value = self._settings.get(HOME_KEY)
        if value is None:
            return None
        home = Path(value)
        return home if home.is_absolute() else self.path.parent / home

    @property
    def port(self) -> int:
        return self._get_port(PORT_KEY, DEFAULT_PORT)

    @property
    def listen_ip(self) -> str | None:
        """The address to listen on as stored, or None for any address."""
        value = self._settings.get(LISTEN_IP_KEY)
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise self._unparsable(LISTEN_IP_KEY, "IPAddress", value) from None
        return value

    @property
    def no_listen(self) -> bool:
        return self._get_bool(NO_LISTEN_KEY, False)

    @property
    def trusted_servers(self) -> list[TrustedServer]:
        value = self._settings.get(TRUSTED_SERVERS_KEY)
        if value is None:
            return []
        try:
            return _SERVERS.validate_json(value) or []
        except ValidationError as error:
            raise self._unparsable(
                TRUSTED_SERVERS_KEY, "OctopusServerConfiguration[]", value, _describe(error)
            ) from None

    @property
    def polling_connection_count(self) -> int | None:
        """As stored; None (and, as in Tentacle, anything below 1) means one connection."""
        return self._get_int(POLLING_CONNECTION_COUNT_KEY)

    @property
    def application_directory(self) -> Path:
        value = self._settings.get(APPLICATION_DIRECTORY_KEY)
        return default_application_directory() if value is None else Path(value)

    @property
    def certificate_thumbprint(self) -> str | None:
        """The thumbprint, when both it and the certificate are stored (else there is none)."""
        thumbprint = self._settings.get(CERTIFICATE_THUMBPRINT_KEY)
        if thumbprint is None or self._settings.get(CERTIFICATE_KEY) is None:
            return None
        return thumbprint

    def certificate(self) -> StoredCertificate | None:
        """The decrypted certificate (base64 PFX), or None when it or its thumbprint is missing."""
        thumbprint = self.certificate_thumbprint
        pfx = self._get_secret(CERTIFICATE_KEY)
        if thumbprint is None or pfx is None:
            return None
        return StoredCertificate(thumbprint, pfx)

    def proxy(self, kind: ProxyKind) -> ProxySettings:
        return ProxySettings(
            use_default_proxy=self._get_bool(kind.key("UseDefaultProxy"), True),
            host=self._settings.get(kind.key("ProxyHost")),
            port=self._get_port(kind.key("ProxyPort"), DEFAULT_PROXY_PORT),
            username=self._settings.get(kind.key("ProxyUsername")),
            password=self._get_secret(kind.key("ProxyPassword")),
        )

    def configuration_view(self, extra: Mapping[str, object] | None = None) -> dict[str, Any]:
        """What show-configuration prints, nested and sorted; `extra` adds flat keys to it.

        The certificate and the proxy settings are left out (they hold secrets); the
        watchdog and server-side keys come from other layers through `extra`.
        """
        flat: dict[str, object] = {
            HOME_KEY: None if self.home is None else str(self.home),
            CERTIFICATE_THUMBPRINT_KEY: self.certificate_thumbprint,
            TRUSTED_SERVERS_KEY: [server.to_json() for server in self.trusted_servers],
            APPLICATION_DIRECTORY_KEY: str(self.application_directory),
            LISTEN_IP_KEY: self.listen_ip,
            NO_LISTEN_KEY: self.no_listen,
            PORT_KEY: self.port,
        }
        count = self.polling_connection_count
        if count is not None:
            flat[POLLING_CONNECTION_COUNT_KEY] = count
        return nest_keys({**flat, **(extra or {})})

    # Changing

    def set_home(self, home: Path) -> Path:
        """Store `home` made absolute, after creating it and its layout; returns what was stored."""
        absolute = Path(os.path.abspath(home))
        HomeLayout(absolute).ensure()
        self._settings.set(HOME_KEY, str(absolute))
        return absolute

    def set_application_directory(self, directory: Path) -> Path:
        absolute = Path(os.path.abspath(directory))
        try:
            absolute.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SettingError(
                APPLICATION_DIRECTORY_KEY,
                f"Cannot create the application directory {absolute}: {error.strerror}.",
                "Choose a directory this user can create.",
            ) from error
        self._settings.set(APPLICATION_DIRECTORY_KEY, str(absolute))
        return absolute

    def set_port(self, port: int) -> None:
        _check_port(PORT_KEY, port)
        self._settings.set(PORT_KEY, str(port))

    def set_listen_ip(self, text: str) -> str | None:
        """'any' (any case) clears the setting; anything else must be an IP address."""
        if text.lower() == "any":
            self._settings.set(LISTEN_IP_KEY, None)
            return None
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise SettingError(
                LISTEN_IP_KEY,
                f"'{text}' is not valid for {LISTEN_IP_KEY}: it must be an IPv4 or IPv6 "
                "address, or 'any'.",
            ) from None
        self._settings.set(LISTEN_IP_KEY, text)
        return text

    def set_no_listen(self, no_listen: bool) -> None:
        self._settings.set(NO_LISTEN_KEY, "true" if no_listen else "false")

    def set_polling_connection_count(self, count: int) -> None:
        _check_polling_connection_count(count)
        self._settings.set(POLLING_CONNECTION_COUNT_KEY, str(count))

    def set_certificate(self, pfx_base64: str, thumbprint: str) -> None:
        """Store both halves in the same edit, so no reader sees one without the other."""
        normalized = thumbprint.strip().upper()
        if not _THUMBPRINT.fullmatch(normalized):
            raise SettingError(
                CERTIFICATE_THUMBPRINT_KEY,
                f"'{thumbprint}' is not valid for {CERTIFICATE_THUMBPRINT_KEY}: it must be 40 "
                "hexadecimal characters (a SHA-1 thumbprint).",
            )
        self._set_secret(CERTIFICATE_KEY, pfx_base64)
        self._settings.set(CERTIFICATE_THUMBPRINT_KEY, normalized)

    def add_or_update_trusted_server(self, server: TrustedServer) -> bool:
        """Add `server`, replacing any entry for the same endpoint; the entry goes last.

        Returns whether an entry was replaced.
        """
        servers = self.trusted_servers
        kept = [entry for entry in servers if not entry.is_same_endpoint(server)]
        self._set_trusted_servers([*kept, server])
        return len(kept) != len(servers)

    def remove_trusted_servers(self, thumbprint: str) -> int:
        """Remove every entry with `thumbprint` (ignoring case); returns how many went."""
        target = TrustedServer.of(thumbprint).thumbprint
        servers = self.trusted_servers
        kept = [entry for entry in servers if entry.thumbprint != target]
        self._set_trusted_servers(kept)
        return len(servers) - len(kept)

    def reset_trusted_servers(self) -> None:
        self._set_trusted_servers([])

    def configure(self, request: ConfigureRequest) -> list[str]:
        """Apply a `configure` invocation; returns Tentacle's log lines for what changed.

        Trust changes come first in Tentacle's order (reset, remove, add), then the values.
        Trusts added here are TentacleActive when the same request sets noListen true. Folders
        are created last, so a value that breaks its rule creates none.
        """
        messages: list[str] = []
        if request.reset_trust:
            messages.append("Removing all trusted Octopus Servers...")
            self.reset_trusted_servers()
        if request.remove_trust:
            messages.append(f"Removing {len(request.remove_trust)} trusted Octopus Servers")
            for thumbprint in request.remove_trust:
                self.remove_trusted_servers(thumbprint)
        if request.trust:
            messages.append(f"Adding {len(request.trust)} trusted Octopus Servers")
            style = (
                CommunicationStyle.TENTACLE_ACTIVE
                if request.no_listen
                else CommunicationStyle.TENTACLE_PASSIVE
            )
            for thumbprint in request.trust:
                self.add_or_update_trusted_server(TrustedServer.of(thumbprint, style))
        if request.port is not None:
            self.set_port(request.port)
            messages.append(f"Services listen port: {request.port}")
        if request.no_listen is not None:
            self.set_no_listen(request.no_listen)
            messages.append(
                "Tentacle will not listen on a port"
                if request.no_listen
                else "Tentacle will listen on a TCP port"
            )
        if request.listen_ip is not None:
            address = self.set_listen_ip(request.listen_ip)
            messages.append(
                "Listen on any IP address"
                if address is None
                else f"Listen on IP address: {address}"
            )
        if request.polling_connection_count is not None:
            self.set_polling_connection_count(request.polling_connection_count)
            messages.append(f"Polling connection count set to: {request.polling_connection_count}")
        if request.home is not None:
            messages.append(f"Home directory set to: {self.set_home(request.home)}")
        if request.app is not None:
            app = self.set_application_directory(request.app)
            messages.append(f"Application directory set to: {app}")
        return messages

    def configure_proxy(self, kind: ProxyKind, request: ProxyRequest) -> list[str]:
        """Apply a `proxy` or `polling-proxy` invocation; returns Tentacle's log lines.

        Without enable the proxy ends up off (host cleared, no default proxy) while the port,
        username and password are kept; enable with no host means the system's default proxy.
        """
        messages: list[str] = []
        if request.username is not None:
            self._settings.set(kind.key("ProxyUsername"), request.username)
            messages.append(
                f"Proxy username set to: {request.username}"
                if request.username.strip()
                else "Proxy username cleared"
            )
        if request.password is not None:
            self._set_secret(kind.key("ProxyPassword"), request.password)
            messages.append(
                "Proxy password set to: *******"
                if request.password.strip()
                else "Proxy password cleared"
            )
        host = _proxy_host(kind, request.host) if request.host and request.host.strip() else None
        if request.port is not None:
            port = _proxy_port(kind, request.port)
            self._settings.set(kind.key("ProxyPort"), str(port))
            if host is not None:
                messages.append(f"Proxy port set to: {port}")
        enabled_host = host if request.enable else None
        self._settings.set(kind.key("ProxyHost"), enabled_host)
        use_default = request.enable and host is None
        self._settings.set(kind.key("UseDefaultProxy"), "true" if use_default else "false")
        if not request.enable:
            messages.append("Proxy use is disabled")
        elif host is None:
            messages.append("Using the default system proxy")
        else:
            messages.append(f"Using custom proxy at: {host}")
        return messages

    # Helpers

    def _set_trusted_servers(self, servers: list[TrustedServer]) -> None:
        text = json.dumps(
            [server.to_json() for server in servers], separators=(",", ":"), ensure_ascii=False
        )
        self._settings.set(TRUSTED_SERVERS_KEY, text)

    def _get_int(self, key: str) -> int | None:
        value = self._settings.get(key)
        if value is None:
            return None
        if not _INT32.fullmatch(value) or not _fits_int32(int(value)):
            raise self._unparsable(key, "Int32", value)
        return int(value)

    def _get_port(self, key: str, default: int) -> int:
        port = self._get_int(key)
        if port is None:
            return default
        if not 1 <= port <= 65535:
            raise self._bad_value(
                key,
                f"Configuration key '{key}' must be a port from 1 to 65535. Value was '{port}'.",
            )
        return port

    def _get_bool(self, key: str, default: bool) -> bool:
        value = self._settings.get(key)
        if value is None:
            return default
        text = value.strip().lower()
        if text not in ("true", "false"):
            raise self._unparsable(key, "Boolean", value)
        return text == "true"

    def _get_secret(self, key: str) -> str | None:
        value = self._settings.get(key)
        if value is None:
            return None
        try:
            return self._require_cipher().decrypt(value)
        except ValueError as error:
            raise self._bad_value(
                key, f"Unable to decrypt the protected configuration setting '{key}'. {error}"
            ) from error

    def _set_secret(self, key: str, plaintext: str | None) -> None:
        if plaintext is None or not plaintext.strip():
            self._settings.set(key, None)
            return
        try:
            sealed = self._require_cipher().encrypt(plaintext)
        except ValueError as error:
            raise SettingError(
                key, f"Unable to encrypt the protected configuration setting '{key}'. {error}"
            ) from error
        self._settings.set(key, sealed)

    def _require_cipher(self) -> ValueCipher:
        if self._cipher is None:
            raise TypeError("This view was opened without a cipher; sensitive settings need one.")
        return self._cipher

    def _unparsable(
        self, key: str, type_name: str, value: str, reason: str | None = None
    ) -> ConfigFileError:
        detail = (
            f"Unable to parse configuration key '{key}' as a '{type_name}'. Value was '{value}'."
        )
        return self._bad_value(key, detail if reason is None else f"{detail} {reason}.")

    def _bad_value(self, key: str, detail: str) -> ConfigFileError:
        return ConfigFileError(
            self.path, detail, line=self._settings.line_of(key), key=key, remedy=FIX_VALUE
        )


def _proxy_host(kind: ProxyKind, text: str) -> str:
    """Reduce a URL or host to its host, as Tentacle's `new UriBuilder(v).Host` does."""
    url = text.strip() if "://" in text else f"http://{text.strip()}"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise SettingError(
            kind.key("ProxyHost"),
            f"'{text}' is not valid for {kind.key('ProxyHost')}: give a host name, an IP "
            "address or a URL such as http://proxy:8080.",
        )
    return f"[{host}]" if ":" in host else host


def _proxy_port(kind: ProxyKind, text: str) -> int:
    if not text.strip():
        return DEFAULT_PROXY_PORT
    if not _INT32.fullmatch(text):
        raise SettingError(
            kind.key("ProxyPort"),
            f"'{text}' is not valid for {kind.key('ProxyPort')}: it must be a whole number "
            "from 1 to 65535, or empty for 80.",
        )
    port = int(text)
    _check_port(kind.key("ProxyPort"), port)
    return port


class TentacleConfigFile:
    """One instance's config file through the typed view: `load()` to read, `edit()` to change."""

    def __init__(self, path: Path, cipher: ValueCipher | None = None) -> None:
        self.settings_file = SettingsFile(path)
        self.cipher = cipher

    @property
    def path(self) -> Path:
        return self.settings_file.path

    def load(self, environ: Mapping[str, str] | None = None) -> TentacleConfig:
        """The settings as the agent sees them: the file, under any values the environment
        contributes (see `contributed`); an edit sees the file alone."""
        settings = self.settings_file.read()
        overrides = contributed(os.environ if environ is None else environ)
        return TentacleConfig(settings.overlaid(overrides) if overrides else settings, self.cipher)

    @contextmanager
    def edit(self) -> Iterator[TentacleConfig]:
        """One transaction (see SettingsFile.edit): all the changes are saved, or none."""
        with self.settings_file.edit() as values:
            yield TentacleConfig(values, self.cipher)


# --- settings contributed by the environment ----------------------------------------------
# Settings contributed by environment variables, as in Tentacle's containers.
#
# Only when OCTOPUS_CONTRIBUTE_ENV_SETTINGS is `true`: then each variable below wins over the
# config file when settings are read, and is never written back. Unlike Tentacle, secrets
# (the certificate, proxy passwords) are not taken from the environment: a process listing or
# a crash dump would show them in clear, and they have a proper store here.

CONTRIBUTE_VARIABLE = "OCTOPUS_CONTRIBUTE_ENV_SETTINGS"

VARIABLES = {
    "OCTOPUS_HOME": HOME_KEY,
    "TENTACLE_SERVICE_PORT": PORT_KEY,
    "TENTACLE_LISTEN_IP": LISTEN_IP_KEY,
    "TENTACLE_NO_LISTEN": NO_LISTEN_KEY,
    "TENTACLE_TRUSTED_SERVERS": TRUSTED_SERVERS_KEY,
    "TENTACLE_APPLICATION_DIRECTORY": APPLICATION_DIRECTORY_KEY,
    "OCTOPUS_USE_DEFAULT_PROXY": ProxyKind.HTTP.key("UseDefaultProxy"),
    "OCTOPUS_PROXY_HOST": ProxyKind.HTTP.key("ProxyHost"),
    "OCTOPUS_PROXY_PORT": ProxyKind.HTTP.key("ProxyPort"),
    "OCTOPUS_PROXY_USER": ProxyKind.HTTP.key("ProxyUsername"),
    "TENTACLE_POLLING_USE_DEFAULT_PROXY": ProxyKind.POLLING.key("UseDefaultProxy"),
    "TENTACLE_POLLING_CUSTOM_PROXY_HOST": ProxyKind.POLLING.key("ProxyHost"),
    "TENTACLE_POLLING_CUSTOM_PROXY_PORT": ProxyKind.POLLING.key("ProxyPort"),
    "TENTACLE_POLLING_CUSTOM_PROXY_USER": ProxyKind.POLLING.key("ProxyUsername"),
}


def contributed(environ: Mapping[str, str]) -> dict[str, str]:
    """The config keys the environment sets, by key; empty unless contribution is switched on."""
    if environ.get(CONTRIBUTE_VARIABLE, "").strip().lower() != "true":
        return {}
    return {key: environ[variable] for variable, key in VARIABLES.items() if variable in environ}
