"""One zip an admin can send to support: the evidence support always asks for, no secrets.

Support for a stuck agent asks for the same things every time (logs, configuration, versions,
the service's state, who runs it), and an admin collecting them by hand sends too little or
too much: a config file with a proxy password in it. The bundle is built from the instance
itself, and secrets are kept out twice over: every config value the config marks as secret
(sealed values, and keys named like passwords, keys, tokens or the certificate) is replaced
by a marker, and every secret value this instance holds is masked wherever it appears in any
member, logs and caller-supplied sections included, as are private-key PEM blocks.

Collecting reads many files and may ask the service manager, so every section is gathered in
a worker thread; each is reported to the caller as it is written.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import platform
import re
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from tentacle_manager import __version__
from tentacle_manager.contracts import ProblemsError
from tentacle_manager.instances.config_file import Setting, Settings, SettingsFile, current_user
from tentacle_manager.instances.errors import InstanceError
from tentacle_manager.instances.instance import CONFIG_KEY_SECRET, TLS_PASSPHRASE_SECRET, Instance
from tentacle_manager.instances.registry import InstanceRegistry
from tentacle_manager.instances.secrets import CIPHER_PREFIX
from tentacle_manager.instances.tentacle_config import ProxyKind
from tentacle_manager.platform.services.choose import choose_manager
from tentacle_manager.platform.services.spec import ServiceError, ServiceSpec

DEFAULT_DAYS = 7
MAX_DAYS = 3650
DAYS_RULE = f"must be a whole number of days from 1 to {MAX_DAYS}"
REDACTED = "<redacted>"
PRIVATE_KEY_REDACTED = "<redacted private key>"
BUNDLE_MODE = 0o600  # it holds logs, which show what scripts printed
MINIMUM_MASKED_LENGTH = 4  # shorter "secrets" would mask ordinary words

# Packages whose versions support asks about; Qt is PySide6's own, read without importing it.
PACKAGES = (
    "tentacle-manager",
    "PySide6-Essentials",
    "PySide6",
    "shiboken6",
    "qasync",
    "aiohttp",
    "cryptography",
    "pydantic",
    "psutil",
    "keyring",
)

_SECRET_WORDS = ("password", "passphrase", "secret", "apikey", "api_key", "token")
_KEY_START = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class ExtraSection:
    """A section another part of the product has already rendered (the prerequisite results,
    the anti-virus report): text as it is, or anything JSON can hold."""

    name: str  # its file name inside the bundle's extra/ folder, e.g. "prerequisites.json"
    content: str | Mapping[str, Any] | Sequence[Any]

    def rendered(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return json.dumps(self.content, indent=2, default=str)


@dataclass(frozen=True)
class BundleSection:
    """One section as written: its members, their size before compression, and what was left
    out or could not be read."""

    name: str
    members: tuple[str, ...]
    size: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "members": list(self.members),
            "size": self.size,
            "note": self.note,
        }


@dataclass(frozen=True)
class BundleManifest:
    path: Path
    created: datetime
    instance: str
    days: int
    sections: tuple[BundleSection, ...]
    redacted_keys: tuple[str, ...]
    masked_values: int  # how many secret values were masked wherever they appeared

    @property
    def size(self) -> int:
        return sum(section.size for section in self.sections)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "created": self.created.isoformat(),
            "generated_by": f"tentacle-manager {__version__}",
            "instance": self.instance,
            "days": self.days,
            "redacted_keys": list(self.redacted_keys),
            "masked_values": self.masked_values,
            "sections": [section.to_json() for section in self.sections],
        }


async def write_support_bundle(
    instance: Instance,
    output: Path,
    *,
    days: int = DEFAULT_DAYS,
    extra_sections: Sequence[ExtraSection] = (),
    overwrite: bool = False,
    on_section: Callable[[BundleSection], None] = lambda section: None,
    now: datetime | None = None,
) -> BundleManifest:
    """Write the bundle for `instance` to `output` (a .zip), with the logs changed in the last
    `days` days. The file appears whole or not at all, readable by its owner only.

    Bad arguments raise ProblemsError naming `days`, `output` or `extra_sections`.
    """
    output = Path(output).absolute()
    _check_arguments(output, days, extra_sections, overwrite)
    builder = _Builder(instance, days, now or datetime.now(UTC))
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        await asyncio.to_thread(builder.open, partial)
        for collect in builder.collectors(extra_sections):
            section = await asyncio.to_thread(collect)
            builder.sections.append(section)
            on_section(section)
        manifest = builder.manifest(output)
        await asyncio.to_thread(builder.close, manifest)
        os.replace(partial, output)
    except BaseException:
        builder.abort()
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _check_arguments(
    output: Path, days: int, extra_sections: Sequence[ExtraSection], overwrite: bool
) -> None:
    problems: dict[str, str] = {}
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        problems["days"] = f"{DAYS_RULE}, not {days!r}"
    if not output.parent.is_dir():
        problems["output"] = f"the folder {output.parent} does not exist"
    elif output.exists() and not overwrite:
        problems["output"] = f"{output} already exists; choose another file or delete it first"
    names = [section.name for section in extra_sections]
    bad = [name for name in names if not _MEMBER_NAME.fullmatch(name)]
    if bad:
        problems["extra_sections"] = (
            f"{bad[0]!r} is not a usable file name: 1-100 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    elif len(set(names)) != len(names):
        problems["extra_sections"] = "two sections have the same name"
    if problems:
        raise ProblemsError(problems)


# --- keeping secrets out -------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """A config key whose value is a secret by its name (Tentacle.Certificate, *Password, ...)."""
    name = key.rsplit(".", 1)[-1].casefold()
    return name == "certificate" or any(word in name for word in _SECRET_WORDS)


class Redactor:
    """Masks known secret values and private-key PEM blocks, line by line, so a log of any
    size streams through it; a key block spanning lines is dropped whole."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        values = {value for value in secrets if value and len(value) >= MINIMUM_MASKED_LENGTH}
        self._secrets = sorted(values, key=len, reverse=True)  # a longer one may hold another
        self._in_key = False

    @property
    def count(self) -> int:
        return len(self._secrets)

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        self._in_key = False
        for line in lines:
            cleaned = self._without_keys(line)
            if cleaned:
                yield self._mask(cleaned)

    def text(self, text: str) -> str:
        return "".join(self.lines(text.splitlines(keepends=True)))

    def _without_keys(self, line: str) -> str:
        kept: list[str] = []
        rest = line
        while rest:
            if self._in_key:
                end = _KEY_END.search(rest)
                if end is None:
                    break
                self._in_key = False
                rest = rest[end.end() :]
                continue
            start = _KEY_START.search(rest)
            if start is None:
                kept.append(rest)
                break
            kept.append(rest[: start.start()] + PRIVATE_KEY_REDACTED)
            self._in_key = True
            rest = rest[start.end() :]
        text = "".join(kept)
        if text and line.endswith("\n") and not text.endswith("\n"):
            text += "\n"
        return text

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def _known_secrets(instance: Instance) -> tuple[list[str | None], str]:
    """Every secret value the instance holds, to mask wherever it appears; and a note when
    some could not be read (their keys are still redacted by name)."""
    values: list[str | None] = []
    try:
        config = instance.config()
        values += [config.proxy(kind).password for kind in ProxyKind]
        stored = config.certificate()
        values.append(stored.pfx_base64 if stored is not None else None)
        values += [
            instance.secrets.get(CONFIG_KEY_SECRET),
            instance.secrets.get(TLS_PASSPHRASE_SECRET),
        ]
    except InstanceError as error:
        return values, f"some secret values could not be read to mask them: {error}"
    return values, ""


# --- the sections ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, instance: Instance, days: int, now: datetime) -> None:
        self.instance = instance
        self.days = days
        self.now = now
        self.sections: list[BundleSection] = []
        self.redacted_keys: list[str] = []
        self.redactor = Redactor(())
        self.secrets_note = ""
        self._archive: zipfile.ZipFile | None = None

    def open(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        os.close(os.open(path, flags, BUNDLE_MODE))
        self._archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)  # keeps that mode
        secrets, self.secrets_note = _known_secrets(self.instance)
        self.redactor = Redactor(secrets)

    def collectors(self, extras: Sequence[ExtraSection]) -> list[Callable[[], BundleSection]]:
        collectors = [
            self.logs,
            self.configuration,
            self.instances,
            self.service,
            self.versions,
            self.system,
        ]
        return collectors + [lambda extra=extra: self.extra(extra) for extra in extras]

    def manifest(self, output: Path) -> BundleManifest:
        return BundleManifest(
            path=output,
            created=self.now,
            instance=self.instance.name or str(self.instance.config_path),
            days=self.days,
            sections=tuple(self.sections),
            redacted_keys=tuple(self.redacted_keys),
            masked_values=self.redactor.count,
        )

    def close(self, manifest: BundleManifest) -> None:
        self._write("manifest.json", json.dumps(manifest.to_json(), indent=2))
        self._zip().close()

    def abort(self) -> None:
        if self._archive is not None:
            archive, self._archive = self._archive, None
            archive.close()

    # Sections: each returns what it wrote.

    def logs(self) -> BundleSection:
        try:
            folder = self.instance.layout().logs
        except InstanceError as error:
            return BundleSection("logs", (), 0, f"the instance has no home: {error}")
        cutoff = (self.now - timedelta(days=self.days)).timestamp()
        members, size, older, unreadable = [], 0, 0, []
        files = (
            sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
        )
        for path in files:
            try:  # a log may be rotated away meanwhile, or belong to another user
                if path.stat().st_mtime < cutoff:
                    older += 1
                    continue
                source = path.open(encoding="utf-8", errors="surrogateescape", newline="")
            except OSError as error:
                unreadable.append(f"{path.name} ({error.strerror or error})")
                continue
            member = f"logs/{path.relative_to(folder).as_posix()}"
            with source:
                size += self._copy_redacted(member, source)
            members.append(member)
        notes = [f"{older} older log file(s) left out"] if older else []
        if unreadable:
            notes.append(f"could not read {', '.join(unreadable)}")
        if not files:
            notes.append(f"no log files in {folder}")
        return BundleSection("logs", tuple(members), size, "; ".join(notes))

    def configuration(self) -> BundleSection:
        path = self.instance.config_path
        notes = [self.secrets_note] if self.secrets_note else []
        members, size = [], 0
        try:
            stored = SettingsFile(path).read()
        except InstanceError as error:
            notes.append(f"the configuration file could not be read: {error}")
        else:
            redacted = []
            for key, value in stored.items():
                if value is not None and (value.startswith(CIPHER_PREFIX) or is_secret_key(key)):
                    redacted.append(Setting(key, REDACTED))
                    self.redacted_keys.append(key)
                else:
                    redacted.append(Setting(key, value))
            members.append(f"config/{path.name}")
            size += self._write(members[-1], Settings(path, redacted).to_xml().decode("utf-8-sig"))
        try:
            view = self._configuration_view()
        except InstanceError as error:
            notes.append(f"the configuration could not be read as the agent reads it: {error}")
        else:
            size += self._write("config/configuration.json", json.dumps(view, indent=2))
            members.append("config/configuration.json")
        return BundleSection("configuration", tuple(members), size, "; ".join(notes))

    def _configuration_view(self) -> dict[str, Any]:
        config = self.instance.config()
        proxies = {}
        for kind in ProxyKind:
            proxy = config.proxy(kind)
            proxies[kind.value] = {
                "UseDefaultProxy": proxy.use_default_proxy,
                "ProxyHost": proxy.host,
                "ProxyPort": proxy.port,
                "ProxyUsername": proxy.username,
                "ProxyPassword": REDACTED if proxy.password else None,
            }
        return {"settings": config.configuration_view(), "proxies": proxies}

    def instances(self) -> BundleSection:
        try:
            records = [
                {"InstanceName": r.name, "ConfigurationFilePath": str(r.configuration_file_path)}
                for r in InstanceRegistry().list_instances()
            ]
        except InstanceError as error:
            return self._json_section("instances", "instances.json", {"error": str(error)})
        return self._json_section("instances", "instances.json", records)

    def service(self) -> BundleSection:
        # A service's status depends only on its name, which the instance decides.
        spec = ServiceSpec.create(
            instance=self.instance.name,
            config_path=self.instance.config_path,
            argv=(sys.executable,),
        )
        reading: dict[str, Any] = {"ServiceName": spec.service_name}
        try:
            manager = choose_manager()
            reading["Manager"] = manager.name
            reading["Status"] = manager.status(spec).value
        except (ServiceError, ProblemsError, OSError) as error:
            reading["Error"] = str(error)
        return self._json_section("service", "service.json", reading)

    def versions(self) -> BundleSection:
        packages = {name: _distribution_version(name) for name in PACKAGES}
        pyside = packages["PySide6-Essentials"] or packages["PySide6"]
        versions = {
            "tentacle-manager": __version__,
            "python": sys.version,
            "python_implementation": platform.python_implementation(),
            "qt": f"{pyside} (the Qt that PySide6 {pyside} bundles)" if pyside else None,
            "packages": packages,
            "frozen": bool(getattr(sys, "frozen", False)),
        }
        return self._json_section("versions", "versions.json", versions)

    def system(self) -> BundleSection:
        system = {
            "os": platform.platform(),
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
            "distribution": _distribution(),
            "hostname": platform.node(),
            "user": _user(),
            "python_executable": sys.executable,
            "local_time": datetime.now().astimezone().isoformat(),
        }
        return self._json_section("system", "system.json", system)

    def extra(self, section: ExtraSection) -> BundleSection:
        member = f"extra/{section.name}"
        size = self._write(member, section.rendered())
        return BundleSection(f"extra: {section.name}", (member,), size)

    # Writing: every member goes through the redactor.

    def _json_section(self, name: str, member: str, value: object) -> BundleSection:
        size = self._write(member, json.dumps(value, indent=2, default=str))
        return BundleSection(name, (member,), size)

    def _write(self, member: str, text: str) -> int:
        data = self.redactor.text(text).encode("utf-8")
        self._zip().writestr(member, data)
        return len(data)

    def _copy_redacted(self, member: str, source: TextIO) -> int:
        """Stream a file line by line; bytes that are not UTF-8 pass through unchanged (the
        source is read with surrogateescape)."""
        size = 0
        with self._zip().open(member, "w", force_zip64=True) as target:
            for line in self.redactor.lines(source):
                data = line.encode("utf-8", errors="surrogateescape")
                target.write(data)
                size += len(data)
        return size

    def _zip(self) -> zipfile.ZipFile:
        assert self._archive is not None, "open() comes first"
        return self._archive


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _distribution() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def _user() -> dict[str, Any]:
    user: dict[str, Any] = {"name": current_user()}
    if os.name == "posix":
        import grp  # POSIX only

        def group_name(gid: int) -> str:
            try:
                return grp.getgrgid(gid).gr_name
            except KeyError:
                return str(gid)

        user.update(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid())
        user["groups"] = sorted({group_name(gid) for gid in os.getgroups()})
    return user
