"""Errors of the instances layer: each says what is wrong, where, and what the user can do.

The CLI turns any `InstanceError` into one stderr line and exit code 1 (Tentacle's
ControlledFailure); the GUI shows `message` and `remedy` apart. Where Tentacle has a fixed
wording, `message` keeps it verbatim so scripts that match on it keep working, and our advice
goes in `remedy`.
"""

from __future__ import annotations

from pathlib import Path


class InstanceError(Exception):
    """A failure the user can act on: never a half-done change (invariant 5)."""

    def __init__(self, message: str, remedy: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        self.field = field

    def one_line(self) -> str:
        return self.message if self.remedy is None else f"{self.message} {self.remedy}"

    def __str__(self) -> str:
        return self.one_line()


class ConfigFileError(InstanceError):
    """A config or index file that cannot be read, parsed or written.

    The message starts `path:line:` like a compiler's, so editors and terminals can jump to it.
    """

    def __init__(
        self,
        path: Path,
        detail: str,
        *,
        line: int | None = None,
        key: str | None = None,
        remedy: str | None = None,
    ) -> None:
        location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{location}: {detail}", remedy, field=key)
        self.path = path
        self.line = line
        self.key = key


class SettingError(InstanceError):
    """A value given for a setting (by an option, the GUI or a caller) that breaks its rule."""

    def __init__(self, field: str, message: str, remedy: str | None = None) -> None:
        super().__init__(message, remedy, field=field)


class InstanceNotFoundError(InstanceError):
    """No instance answers to the name, no default exists, or its config file is gone."""


class AmbiguousInstanceError(InstanceError):
    """Several instances could be meant and nothing says which."""
