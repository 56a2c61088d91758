"""Writing a request's extra files into a workspace, encrypted the way Calamari expects.

Encryption is Tentacle's AesEncryption layout so existing Calamari builds can read the files:
AES-128-CBC with PKCS7 padding, key = PBKDF2-HMAC-SHA1(password, "Octopuss", 1000 rounds,
16 bytes), file = b"IV__" + 16-byte IV + ciphertext.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from tentacle_manager.contracts import ScriptFile

_SALT = b"Octopuss"
_IV_MARKER = b"IV__"


class WorkspaceEscapeError(ValueError):
    """A file name that would land outside its workspace."""


def _key(password: str) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA1(), length=16, salt=_SALT, iterations=1000)
    return kdf.derive(password.encode("utf-8"))


def encrypt(contents: bytes, password: str) -> bytes:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(contents) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_key(password)), modes.CBC(iv)).encryptor()
    return _IV_MARKER + iv + encryptor.update(padded) + encryptor.finalize()


def decrypt(data: bytes, password: str) -> bytes:
    if not data.startswith(_IV_MARKER) or len(data) < 20:
        raise ValueError("not an encrypted Tentacle file (missing the IV__ header)")
    iv, body = data[4:20], data[20:]
    decryptor = Cipher(algorithms.AES(_key(password)), modes.CBC(iv)).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def resolve_inside(root: Path, name: str) -> Path:
    """The absolute path of `name` under `root`; refuses anything that resolves outside it."""
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise WorkspaceEscapeError(f"file name {name!r} resolves outside the workspace")
    return target


def write_script_file(root: Path, script_file: ScriptFile) -> Path:
    target = resolve_inside(root, script_file.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    contents = script_file.contents
    if script_file.encryption_password is not None:
        contents = encrypt(contents, script_file.encryption_password.get_secret_value())
    target.write_bytes(contents)
    return target
