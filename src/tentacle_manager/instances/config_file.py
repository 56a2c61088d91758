"""Tentacle's flat XML settings file, read with line numbers and written crash-safely.

The format is Tentacle's (XmlKeyValueStore.cs): an `<octopus-settings>` root holding one
`<set key="K">V</set>` per setting, keys case-insensitive, written sorted and indented in
UTF-8 with a byte-order mark. A null or blank value is kept as an empty element and reads back
as missing, so the default applies.

Unlike Tentacle, which truncates the file and rewrites it in place, a save here goes to a temp
file that is fsynced and renamed over the original under an advisory lock: a crash leaves the
old file or the new one, and two writers cannot lose each other's changes.
"""

from __future__ import annotations

import codecs
import getpass
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

from tentacle_manager.files.atomic import PendingFile, write_atomically
from tentacle_manager.files.locks import exclusive_lock
from tentacle_manager.instances.errors import ConfigFileError, SettingError

EMPTY_DOCUMENT = b"<?xml version='1.0' encoding='UTF-8' ?><octopus-settings></octopus-settings>"
ROOT_ELEMENT = "octopus-settings"
SETTING_ELEMENT = "set"
KEY_ATTRIBUTE = "key"
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
NAMESPACE_ATTRIBUTES = {
    "xmlns:xsd": "http://www.w3.org/2001/XMLSchema",
    "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
CONFIG_FILE_MODE = 0o640
FIX_FILE = "Correct the file by hand or restore it from a backup."

# XML 1.0 cannot carry other control characters, and a carriage return would come back as a
# line feed, so a value holding one could never be read back as written.
_NOT_STORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")


@dataclass(frozen=True)
class Setting:
    key: str
    value: str | None
    line: int | None = None  # where the file holds it; None once changed in memory


class Settings:
    """The keys and values of one settings file, as read or as changed inside an edit.

    Lookups ignore case, as Tentacle's do; a key keeps the spelling it was first stored with.
    A snapshot from `SettingsFile.read` refuses changes, so a change can never be silently
    dropped for want of a save.
    """

    def __init__(self, path: Path, entries: Iterable[Setting] = (), *, writable: bool = False):
        self.path = path
        self._writable = writable
        self._entries = {entry.key.casefold(): entry for entry in entries}

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key.casefold())
        return None if entry is None else entry.value

    def line_of(self, key: str) -> int | None:
        entry = self._entries.get(key.casefold())
        return None if entry is None else entry.line

    def set(self, key: str, value: str | None) -> None:
        """Store `value`; None or blank is stored as an empty element that reads as missing."""
        self._check_writable()
        _check_storable("key", key, key)
        if not key.strip() or key != key.strip():
            raise SettingError(
                key, f"Configuration key {key!r} is not valid: it must not be blank or padded."
            )
        if value is not None:
            _check_storable("value", key, value)
        existing = self._entries.get(key.casefold())
        stored_key = key if existing is None else existing.key
        stored_value = value if value is not None and value.strip() else None
        self._entries[key.casefold()] = Setting(stored_key, stored_value)

    def overlaid(self, values: Mapping[str, str]) -> Settings:
        """A read-only copy in which `values` replace the stored ones (they have no line)."""
        copy = Settings(self.path, self._entries.values())
        for key, value in values.items():
            existing = self._entries.get(key.casefold())
            copy._entries[key.casefold()] = Setting(existing.key if existing else key, value)
        return copy

    def remove(self, key: str) -> None:
        self._check_writable()
        self._entries.pop(key.casefold(), None)

    def items(self) -> list[tuple[str, str | None]]:
        """Every stored key with its value (None when empty), in the order they are written."""
        ordered = sorted(
            self._entries.values(), key=lambda entry: (entry.key.casefold(), entry.key)
        )
        return [(entry.key, entry.value) for entry in ordered]

    def to_xml(self) -> bytes:
        root = ET.Element(ROOT_ELEMENT, NAMESPACE_ATTRIBUTES)
        for key, value in self.items():
            ET.SubElement(root, SETTING_ELEMENT, {KEY_ATTRIBUTE: key}).text = value
        ET.indent(root, space="  ")
        body = ET.tostring(root, encoding="unicode")
        return codecs.BOM_UTF8 + f"{XML_DECLARATION}\n{body}".encode()

    def _check_writable(self) -> None:
        if not self._writable:
            raise TypeError(
                f"Settings of {self.path} were read as a snapshot; change them inside "
                "SettingsFile.edit() so the change is saved."
            )


def _check_storable(part: str, key: str, text: str) -> None:
    if _NOT_STORABLE.search(text):
        raise SettingError(
            key,
            f"The {part} of configuration key {key!r} is not valid: it must not contain "
            "control characters other than tab and line feed.",
        )


class _Reader:
    """Expat callbacks that collect settings and reject anything Tentacle would not write."""

    def __init__(self, path: Path, parser: expat.XMLParserType) -> None:
        self.path = path
        self.parser = parser
        self.entries: dict[str, Setting] = {}
        self.depth = 0
        self.open_key: str | None = None  # the <set> being read
        self.last_key: str | None = None  # the last <set> opened, to place errors between them
        self.text: list[str] = []

    def fail(self, detail: str, key: str | None = None) -> ConfigFileError:
        """An error at the parser's line, naming `key`, else the key being read or just read."""
        if key is None and self.open_key is not None:
            key = self.open_key
        elif key is None and self.last_key is not None:
            key = self.last_key
            detail = f"{detail} (after key {key!r})"
        return ConfigFileError(
            self.path, detail, line=self.parser.CurrentLineNumber, key=key, remedy=FIX_FILE
        )

    def doctype(self, name: str, *_: object) -> None:
        raise self.fail(f"a DOCTYPE ({name}) is not allowed in a settings file")

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1 and name != ROOT_ELEMENT:
            raise self.fail(f"the root element is <{name}>, expected <{ROOT_ELEMENT}>")
        if self.depth == 2:
            self._start_setting(name, attributes)
        if self.depth > 2:
            raise self.fail(
                f"key {self.open_key!r} holds an element <{name}>; a value must be plain text"
            )

    def _start_setting(self, name: str, attributes: dict[str, str]) -> None:
        key = attributes.get(KEY_ATTRIBUTE, "")
        if name != SETTING_ELEMENT or not key.strip():
            raise self.fail(
                f"<{name}> is not allowed here; <{ROOT_ELEMENT}> may only hold "
                f'<{SETTING_ELEMENT} {KEY_ATTRIBUTE}="..."> elements'
            )
        extra = sorted(set(attributes) - {KEY_ATTRIBUTE})
        if extra:
            raise self.fail(f"key {key!r} has attribute {extra[0]!r}; only 'key' is allowed", key)
        line = self.parser.CurrentLineNumber
        earlier = self.entries.get(key.casefold())
        if earlier is not None:
            raise self.fail(
                f"key {key!r} is set twice, on line {earlier.line} and line {line} "
                f"(as {earlier.key!r} and {key!r}; keys ignore case)",
                key,
            )
        self.open_key = self.last_key = key
        self.text = []
        self.entries[key.casefold()] = Setting(key, None, line)

    def end(self, name: str) -> None:
        if self.depth == 2 and self.open_key is not None:
            entry = self.entries[self.open_key.casefold()]
            value = "".join(self.text)
            self.entries[self.open_key.casefold()] = Setting(
                entry.key, value if value.strip() else None, entry.line
            )
            self.open_key = None
        self.depth -= 1

    def characters(self, data: str) -> None:
        if self.depth == 2:
            self.text.append(data)
        elif data.strip():
            raise self.fail(f"text {data.strip()[:20]!r} is outside any <{SETTING_ELEMENT}>")


def parse_settings(path: Path, data: bytes) -> list[Setting]:
    """The settings in `data`, or a ConfigFileError naming the file, the line and the key."""
    parser = expat.ParserCreate()
    reader = _Reader(path, parser)
    parser.StartDoctypeDeclHandler = reader.doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        detail = f"the file is not well-formed XML: {expat.ErrorString(error.code)}"
        if reader.open_key is not None:
            detail = f"{detail} (in key {reader.open_key!r})"
        elif reader.last_key is not None:
            detail = f"{detail} (after key {reader.last_key!r})"
        raise ConfigFileError(
            path, detail, line=error.lineno, key=reader.open_key or reader.last_key, remedy=FIX_FILE
        ) from None
    return list(reader.entries.values())


class SettingsFile:
    """One settings file on disk: snapshots to read, and transactions to change it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> Settings:
        """A read-only snapshot; a missing file reads as empty, as in Tentacle."""
        return Settings(self.path, self._load())

    @contextmanager
    def edit(self) -> Iterator[Settings]:
        """Change the file as one transaction: `with settings_file.edit() as values: ...`.

        The file is re-read under the lock, so changes made by another process since an
        earlier read are kept. Each change is checked as it is made; the file is written once,
        after the block ends, and not at all if the block raises or changes nothing.
        """
        with locked(self.path):
            values = Settings(self.path, self._load(), writable=True)
            before = values.items()
            yield values
            if values.items() != before:
                replace_file(self.path, values.to_xml(), CONFIG_FILE_MODE)

    def create_empty(self) -> bool:
        """Create the folder and Tentacle's exact empty document if the file is missing.

        Returns whether the file was created; an existing file is left as it is.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.path.parent, error) from error
        with locked(self.path):
            if self.path.exists():
                return False
            replace_file(self.path, EMPTY_DOCUMENT, CONFIG_FILE_MODE)
            return True

    def _load(self) -> list[Setting]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ConfigFileError(
                self.path,
                f"Unable to read the file as user '{current_user()}': {error.strerror}.",
                remedy="Please check file permissions.",
            ) from error
        return parse_settings(self.path, data)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for `path` on a sibling `.NAME.lock` file.

    The lock cannot be taken on `path` itself: every save renames a new inode over it, so a
    writer that waited on the old inode would hold a lock that no newcomer checks. The lock
    file is never deleted for the same reason: a waiter would be left locking an unlinked inode
    while a newcomer creates and locks a fresh one, and both would write.
    """
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        with exclusive_lock(lock_path, 0o644):
            yield
    except OSError as error:
        raise write_error(path, error) from error


def replace_file(path: Path, data: bytes, new_file_mode: int) -> None:
    """Replace `path` with `data` so a reader or a crash sees the old file or the new, whole.

    An existing file keeps its mode, and its owner when running as root, so a root `configure`
    does not lock the service account out of its own file; `new_file_mode` is for a new one.
    A failure becomes a ConfigFileError that names the user, since permissions are the usual
    cause. Call it under `locked(path)`.
    """
    try:
        write_atomically(PendingFile(path, data, new_file_mode, keep_identity=True))
    except OSError as error:
        raise write_error(path, error) from error


def write_error(path: Path, error: OSError) -> ConfigFileError:
    return ConfigFileError(
        path,
        f"Unable to write file as user '{current_user()}': {error.strerror or error}.",
        remedy="Please check file permissions.",
    )


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())
