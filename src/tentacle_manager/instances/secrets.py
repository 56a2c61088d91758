"""Where secrets live: the OS keyring when there is one, else an owner-only file; and a cipher.

Tentacle encrypts its certificate and proxy passwords with AES-CBC under a fixed IV, keyed by
/etc/machine-id, so anyone who can read that file can decrypt, and a wrong key goes unnoticed
about once in 256 tries. Here the key is random, kept in a secret store, and values are sealed
with AES-256-GCM, which authenticates: a wrong key or a changed byte is an error, never garbage.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import keyring
import keyring.backend
import keyring.errors
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backends import chainer, fail, null

from tentacle_manager.files.atomic import (
    PendingFile,
    make_private_directory,
    write_atomically,
)
from tentacle_manager.files.locks import exclusive_lock
from tentacle_manager.instances.errors import InstanceError

OVERRIDE_VARIABLE = "TENTACLE_SECRET_STORE"
FALLBACK_WARNING = (
    "Fallback secret store: no OS keyring was available. Readable only by its owner. Do not copy."
)
CIPHER_PREFIX = "tm1:"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_SIZE = 32
_SET_AGAIN = "Set the value again."


class SecretStoreError(InstanceError):
    """A secret store cannot be chosen, read or written; the message says which and how to fix."""


class SecretCipherError(InstanceError):
    """A value cannot be encrypted or decrypted; the message names the key or value at fault."""


class StoreKind(StrEnum):
    KEYRING = "keyring"
    FILE = "file"


class SecretStore(Protocol):
    """A place for short named secrets; `description` says which place, for diagnostics."""

    @property
    def description(self) -> str: ...

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise SecretStoreError(
            f"Secret name {name!r} is not valid: it must be a non-empty string.", field="name"
        )


def _check_value(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise SecretStoreError(
            f"Secret '{name}' is not valid: its value must be text, not {type(value).__name__}.",
            field=name,
        )


class KeyringStore:
    """Secrets in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    def __init__(self, service: str, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.service = service
        self.backend = backend or keyring.get_keyring()

    @property
    def description(self) -> str:
        return f"OS keyring ({backend_name(self.backend)}), service '{self.service}'"

    def get(self, name: str) -> str | None:
        _check_name(name)
        with self._errors("read", name):
            return self.backend.get_password(self.service, name)

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        _check_value(name, value)
        with self._errors("store", name):
            self.backend.set_password(self.service, name, value)

    def delete(self, name: str) -> None:
        """Forget `name`; forgetting a secret that is not there is not an error."""
        if self.get(name) is None:
            return
        with self._errors("delete", name):
            self.backend.delete_password(self.service, name)

    @contextmanager
    def _errors(self, action: str, name: str) -> Iterator[None]:
        try:
            yield
        except keyring.errors.KeyringError as error:
            raise SecretStoreError(
                f"Could not {action} secret '{name}' in the {self.description}: {error}.",
                f"Unlock the keyring, or set {OVERRIDE_VARIABLE}=file to use the file store.",
                field=name,
            ) from error


class OwnerOnlyFileStore:
    """Secrets in a JSON file that only its owner can open: the fallback when there is no keyring.

    The file is as safe as the account that owns it, which is why it refuses to read a file
    or directory that anyone else could open or that someone else owns: a copied or loosened
    store must be noticed, not silently trusted.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def description(self) -> str:
        return f"owner-only file {self.path}"

    def get(self, name: str) -> str | None:
        _check_name(name)
        return self._read().get(name)

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        _check_value(name, value)
        with self._locked():
            secrets = self._read()
            secrets[name] = value
            self._write(secrets)

    def delete(self, name: str) -> None:
        """Forget `name`; forgetting a secret that is not there is not an error."""
        _check_name(name)
        with self._locked():
            secrets = self._read()
            if secrets.pop(name, None) is not None:
                self._write(secrets)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write across processes, so concurrent sets lose nothing."""
        directory = self.path.parent
        make_private_directory(directory)
        _check_private(os.stat(directory), directory, "700")
        with exclusive_lock(directory / ".lock"):
            yield

    def _read(self) -> dict[str, str]:
        try:
            _check_private(os.stat(self.path.parent), self.path.parent, "700")
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as error:
            problem = "it is a symbolic link" if error.errno == errno.ELOOP else error.strerror
            raise SecretStoreError(
                f"Secret store {self.path} cannot be opened: {problem}.",
                "It must be a regular file owned and readable by this user only.",
            ) from error
        with os.fdopen(fd, "rb") as handle:
            _check_private(os.fstat(handle.fileno()), self.path, "600")
            raw = handle.read()
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, str]:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SecretStoreError(
                f"Secret store {self.path} is not valid JSON ({error}).",
                "Restore it from a backup, or delete it and set the secrets again.",
            ) from error
        secrets = document.get("secrets") if isinstance(document, dict) else None
        if not isinstance(secrets, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in secrets.items()
        ):
            raise SecretStoreError(
                f"Secret store {self.path} is not valid: 'secrets' must be an object mapping "
                "names to strings.",
                "Restore it from a backup, or delete it and set the secrets again.",
            )
        return secrets

    def _write(self, secrets: dict[str, str]) -> None:
        document = {"_warning": FALLBACK_WARNING, "secrets": dict(sorted(secrets.items()))}
        data = json.dumps(document, indent=2).encode() + b"\n"
        write_atomically(PendingFile(self.path, data, 0o600))


def _check_private(status: os.stat_result, path: Path, mode: str) -> None:
    if status.st_uid != os.geteuid():
        raise SecretStoreError(
            f"Secret store path {path} is owned by uid {status.st_uid}, not by this user "
            f"(uid {os.geteuid()}); it must belong to the account that uses it.",
            f"Fix: chown {os.geteuid()} {path}",
        )
    if stat.S_IMODE(status.st_mode) & 0o077:
        raise SecretStoreError(
            f"Secret store path {path} can be opened by group or others "
            f"(mode {stat.S_IMODE(status.st_mode):03o}); it must be readable by its owner only.",
            f"Fix: chmod {mode} {path}",
        )


def backend_name(backend: keyring.backend.KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def _usable(backend: keyring.backend.KeyringBackend) -> bool:
    """Does `backend` really keep secrets? fail and null do not; an empty chain does not."""
    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return bool(backend.backends)
    try:
        return backend.priority > 0
    except Exception:  # keyring signals an unviable backend by raising from `priority`
        return False


def _priority(backend: keyring.backend.KeyringBackend) -> float | None:
    try:
        return float(backend.priority)
    except Exception:  # see _usable
        return None


@dataclass(frozen=True)
class _Choice:
    kind: StoreKind
    reason: str
    backend: keyring.backend.KeyringBackend


def _choose() -> _Choice:
    backend = keyring.get_keyring()
    usable = _usable(backend)
    forced = os.environ.get(OVERRIDE_VARIABLE, "").strip().lower()
    if forced == StoreKind.FILE:
        return _Choice(StoreKind.FILE, f"{OVERRIDE_VARIABLE}=file forces the file store", backend)
    if forced == StoreKind.KEYRING:
        if not usable:
            raise SecretStoreError(
                f"{OVERRIDE_VARIABLE}=keyring, but the keyring backend {backend_name(backend)} "
                "cannot keep secrets.",
                f"Install or unlock an OS keyring, or set {OVERRIDE_VARIABLE}=file.",
                field=OVERRIDE_VARIABLE,
            )
        return _Choice(
            StoreKind.KEYRING, f"{OVERRIDE_VARIABLE}=keyring forces the keyring", backend
        )
    if forced:
        raise SecretStoreError(
            f"{OVERRIDE_VARIABLE}={os.environ[OVERRIDE_VARIABLE]!r} is not valid: it must be "
            "'keyring' or 'file' (or unset to choose automatically).",
            field=OVERRIDE_VARIABLE,
        )
    if usable:
        return _Choice(StoreKind.KEYRING, "a usable OS keyring backend was found", backend)
    return _Choice(StoreKind.FILE, "no usable OS keyring backend was found", backend)


def _store_for(choice: _Choice, service: str, fallback_path: Path) -> SecretStore:
    if choice.kind is StoreKind.KEYRING:
        return KeyringStore(service, choice.backend)
    return OwnerOnlyFileStore(fallback_path)


def choose_store(service: str, fallback_path: Path) -> SecretStore:
    """The OS keyring when it can keep secrets, else the owner-only file at `fallback_path`."""
    return _store_for(_choose(), service, fallback_path)


def diagnose(service: str, fallback_path: Path) -> dict[str, Any]:
    """Which store would be used and why, for show-configuration; never raises on a bad choice."""
    backend = keyring.get_keyring()
    report: dict[str, Any] = {
        "backend": backend_name(backend),
        "priority": _priority(backend),
        "override": os.environ.get(OVERRIDE_VARIABLE),
        "fallback_path": str(fallback_path),
    }
    try:
        choice = _choose()
    except SecretStoreError as error:
        return report | {"kind": None, "store": None, "reason": str(error)}
    store = _store_for(choice, service, fallback_path)
    return report | {"kind": str(choice.kind), "store": store.description, "reason": choice.reason}


class SecretCipher:
    """Seals short values with AES-256-GCM under a random key kept in a secret store.

    The key is made on the first encrypt and read back from the store, so what is used is
    what the store kept, not a copy in memory that another process may have replaced. Values
    are "tm1:" + base64(nonce + ciphertext + tag); the prefix is authenticated too, so a
    value cannot be relabelled as another format.
    """

    def __init__(self, store: SecretStore, key_name: str) -> None:
        _check_name(key_name)
        self.store = store
        self.key_name = key_name

    def encrypt(self, plaintext: str) -> str:
        if not isinstance(plaintext, str):
            raise SecretCipherError(
                f"Only text can be encrypted, not {type(plaintext).__name__}.", field="plaintext"
            )
        nonce = os.urandom(_NONCE_SIZE)
        sealed = AESGCM(self._key(create=True)).encrypt(
            nonce, plaintext.encode(), CIPHER_PREFIX.encode()
        )
        return CIPHER_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        blob = self._unwrap(ciphertext)
        key = self._key(create=False)
        try:
            plain = AESGCM(key).decrypt(
                blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], CIPHER_PREFIX.encode()
            )
        except InvalidTag as error:
            raise SecretCipherError(
                f"The encrypted value could not be decrypted with key '{self.key_name}' from "
                f"the {self.store.description}: the key is not the one it was encrypted with, "
                "or the value was changed.",
                _SET_AGAIN,
            ) from error
        return plain.decode()

    @staticmethod
    def _unwrap(ciphertext: str) -> bytes:
        if not isinstance(ciphertext, str) or not ciphertext.startswith(CIPHER_PREFIX):
            raise SecretCipherError(
                f"The encrypted value is not valid: it must start with '{CIPHER_PREFIX}'.",
                _SET_AGAIN,
            )
        try:
            blob = base64.b64decode(ciphertext[len(CIPHER_PREFIX) :], validate=True)
        except binascii.Error as error:
            raise SecretCipherError(
                f"The encrypted value is not valid: the text after '{CIPHER_PREFIX}' must be "
                f"base64 ({error}).",
                _SET_AGAIN,
            ) from error
        if len(blob) < _NONCE_SIZE + _TAG_SIZE:
            raise SecretCipherError(
                f"The encrypted value is not valid: it is {len(blob)} bytes, shorter than the "
                f"{_NONCE_SIZE + _TAG_SIZE} bytes of nonce and tag.",
                _SET_AGAIN,
            )
        return blob

    def _key(self, *, create: bool) -> bytes:
        stored = self.store.get(self.key_name)
        if stored is None and create:
            self.store.set(self.key_name, base64.b64encode(os.urandom(_KEY_SIZE)).decode())
            stored = self.store.get(self.key_name)
        if stored is None:
            raise SecretCipherError(
                f"Encryption key '{self.key_name}' is missing from the {self.store.description}; "
                "values encrypted with it cannot be recovered.",
                "Set every encrypted value again.",
                field=self.key_name,
            )
        try:
            key = base64.b64decode(stored, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != _KEY_SIZE:
            raise SecretCipherError(
                f"Encryption key '{self.key_name}' in the {self.store.description} is not valid: "
                f"it must be {_KEY_SIZE} bytes in base64.",
                "Restore it, or delete it and set every encrypted value again.",
                field=self.key_name,
            )
        return key
