"""Secrets: the owner-only file store, store choice, and the AES-GCM cipher."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import chainer, fail, null

from tentacle_manager.instances.secrets import (
    FALLBACK_WARNING,
    KeyringStore,
    OwnerOnlyFileStore,
    SecretCipher,
    SecretCipherError,
    SecretStoreError,
    choose_store,
    diagnose,
)

NOBODY = 65534
Backend = keyring.backend.KeyringBackend
UseBackend = Callable[[Backend], None]


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Stands in for an OS keyring, which this headless machine cannot have.

    Not viable, so keyring's own discovery never picks it up for other tests.
    """

    viable = False
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.values[(service, username)]


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENTACLE_SECRET_STORE", raising=False)


@pytest.fixture
def use_backend() -> Iterator[UseBackend]:
    previous = keyring.get_keyring()

    def install(backend: Backend) -> None:
        keyring.set_keyring(backend)

    yield install
    keyring.set_keyring(previous)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "store.json"


@pytest.fixture
def store(store_path: Path) -> OwnerOnlyFileStore:
    return OwnerOnlyFileStore(store_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the owner-only file store --------------------------------------------------------------


def test_file_store_round_trip_and_layout(store: OwnerOnlyFileStore, store_path: Path) -> None:
    assert store.get("missing") is None
    assert not store_path.parent.exists()
    store.set("proxy", "pässword")
    store.set("other", "x")
    store.delete("other")
    store.delete("never-set")

    assert store.get("proxy") == "pässword"
    assert _mode(store_path.parent) == 0o700
    assert _mode(store_path) == 0o600
    document = json.loads(store_path.read_text())
    assert document == {"_warning": FALLBACK_WARNING, "secrets": {"proxy": "pässword"}}
    assert sorted(p.name for p in store_path.parent.iterdir()) == [".lock", "store.json"]
    assert str(store_path) in store.description
    assert OwnerOnlyFileStore(store_path).get("proxy") == "pässword"


def test_file_store_refuses_a_file_others_can_read(
    store: OwnerOnlyFileStore, store_path: Path
) -> None:
    store.set("proxy", "secret")
    before = store_path.read_bytes()
    store_path.chmod(0o644)
    with pytest.raises(SecretStoreError) as caught:
        store.get("proxy")
    message = str(caught.value)
    assert f"Secret store path {store_path} can be opened by group or others (mode 644)" in message
    assert caught.value.remedy == f"Fix: chmod 600 {store_path}"
    with pytest.raises(SecretStoreError, match="can be opened by group or others"):
        store.set("proxy", "changed")
    assert store_path.read_bytes() == before


def test_file_store_refuses_an_open_directory(store: OwnerOnlyFileStore, store_path: Path) -> None:
    store.set("proxy", "secret")
    store_path.parent.chmod(0o750)
    with pytest.raises(SecretStoreError, match=rf"Fix: chmod 700 {store_path.parent}$"):
        store.get("proxy")
    with pytest.raises(SecretStoreError, match="mode 750"):
        store.delete("proxy")
    store_path.parent.chmod(0o700)
    assert store.get("proxy") == "secret"


def test_file_store_refuses_a_file_another_user_owns(
    store: OwnerOnlyFileStore, store_path: Path
) -> None:
    store.set("proxy", "secret")
    os.chown(store_path, NOBODY, -1)
    with pytest.raises(SecretStoreError) as caught:
        store.get("proxy")
    assert f"{store_path} is owned by uid {NOBODY}, not by this user" in str(caught.value)
    assert f"Fix: chown {os.geteuid()} {store_path}" in str(caught.value)


def test_file_store_refuses_a_symbolic_link(store_path: Path, tmp_path: Path) -> None:
    real = OwnerOnlyFileStore(tmp_path / "elsewhere" / "real.json")
    real.set("proxy", "secret")
    store_path.parent.mkdir(mode=0o700)
    store_path.symlink_to(real.path)
    with pytest.raises(SecretStoreError, match=r"cannot be opened: it is a symbolic link\."):
        OwnerOnlyFileStore(store_path).get("proxy")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[]", "'secrets' must be an object"),
        (b'{"secrets": {"a": 1}}', "'secrets' must be an object mapping names to strings"),
    ],
)
def test_file_store_reports_a_damaged_file(
    store: OwnerOnlyFileStore, store_path: Path, content: bytes, message: str
) -> None:
    store.set("proxy", "secret")
    store_path.write_bytes(content)
    with pytest.raises(SecretStoreError, match=message):
        store.get("proxy")
    with pytest.raises(SecretStoreError, match=message):
        store.set("proxy", "changed")
    assert store_path.read_bytes() == content


@pytest.mark.parametrize(("name", "value"), [("", "v"), ("  ", "v"), (None, "v"), ("n", 5)])
def test_file_store_rejects_bad_names_and_values(
    store: OwnerOnlyFileStore, store_path: Path, name: object, value: object
) -> None:
    with pytest.raises(SecretStoreError, match="is not valid"):
        store.set(name, value)  # type: ignore[arg-type]
    assert not store_path.exists()


def test_file_store_loses_no_concurrent_update(store: OwnerOnlyFileStore) -> None:
    def writer(worker: int) -> None:
        for index in range(10):
            OwnerOnlyFileStore(store.path).set(f"w{worker}-{index}", str(index))

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    document = json.loads(store.path.read_text())
    assert len(document["secrets"]) == 60


# --- the keyring store and the choice ---------------------------------------------------------


def test_keyring_store_round_trip(use_backend: UseBackend) -> None:
    backend = MemoryKeyring()
    use_backend(backend)
    store = KeyringStore("tentacle-test")
    store.set("proxy", "secret")
    assert store.get("proxy") == "secret"
    assert backend.values == {("tentacle-test", "proxy"): "secret"}
    store.delete("proxy")
    store.delete("proxy")
    assert store.get("proxy") is None
    assert "MemoryKeyring" in store.description and "tentacle-test" in store.description


def test_keyring_store_errors_say_what_to_do() -> None:
    store = KeyringStore("tentacle-test", LockedKeyring())
    with pytest.raises(SecretStoreError, match=r"Could not read secret 'proxy' in the OS keyring"):
        store.get("proxy")
    with pytest.raises(SecretStoreError, match="set TENTACLE_SECRET_STORE=file"):
        store.delete("proxy")


def test_choose_store_falls_back_to_the_file_here(store_path: Path) -> None:
    assert isinstance(keyring.get_keyring(), fail.Keyring | chainer.ChainerBackend)
    chosen = choose_store("tentacle-test", store_path)
    assert isinstance(chosen, OwnerOnlyFileStore)
    assert chosen.path == store_path
    report = diagnose("tentacle-test", store_path)
    assert report["kind"] == "file"
    assert report["reason"] == "no usable OS keyring backend was found"
    assert report["fallback_path"] == str(store_path)
    assert report["store"] == chosen.description


@pytest.mark.parametrize(
    "backend",
    [fail.Keyring(), null.Keyring(), chainer.ChainerBackend()],
    ids=["fail", "null", "empty-chainer"],
)
def test_unusable_backends_count_as_none(
    use_backend: UseBackend, store_path: Path, backend: Backend
) -> None:
    use_backend(backend)
    assert isinstance(choose_store("tentacle-test", store_path), OwnerOnlyFileStore)


def test_choose_store_prefers_a_usable_keyring(use_backend: UseBackend, store_path: Path) -> None:
    use_backend(MemoryKeyring())
    assert isinstance(choose_store("tentacle-test", store_path), KeyringStore)
    report = diagnose("tentacle-test", store_path)
    assert (report["kind"], report["priority"]) == ("keyring", 1.0)
    assert report["backend"].endswith("MemoryKeyring")


def test_override_forces_the_file_store(
    use_backend: UseBackend, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(MemoryKeyring())
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "File")
    assert isinstance(choose_store("tentacle-test", store_path), OwnerOnlyFileStore)
    assert diagnose("tentacle-test", store_path)["override"] == "File"


def test_forcing_an_unusable_keyring_is_an_error(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "keyring")
    with pytest.raises(SecretStoreError, match="TENTACLE_SECRET_STORE=keyring, but the keyring"):
        choose_store("tentacle-test", store_path)
    report = diagnose("tentacle-test", store_path)
    assert report["store"] is None
    assert "cannot keep secrets" in report["reason"]


def test_forcing_a_usable_keyring(
    use_backend: UseBackend, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(MemoryKeyring())
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "keyring")
    assert isinstance(choose_store("tentacle-test", store_path), KeyringStore)


def test_unknown_override_is_an_error(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "vault")
    with pytest.raises(SecretStoreError, match=r"TENTACLE_SECRET_STORE='vault' is not valid") as e:
        choose_store("tentacle-test", store_path)
    assert e.value.field == "TENTACLE_SECRET_STORE"


# --- the cipher -----------------------------------------------------------------------------


@pytest.fixture
def cipher(store: OwnerOnlyFileStore) -> SecretCipher:
    return SecretCipher(store, "machine-key")


@pytest.mark.parametrize("plaintext", ["", "proxy pässword ✓", "A" * 5000])
def test_cipher_round_trip(cipher: SecretCipher, plaintext: str) -> None:
    sealed = cipher.encrypt(plaintext)
    assert sealed.startswith("tm1:")
    assert len(base64.b64decode(sealed[4:])) == 12 + len(plaintext.encode()) + 16
    assert cipher.decrypt(sealed) == plaintext


def test_cipher_makes_and_keeps_its_key(cipher: SecretCipher, store: OwnerOnlyFileStore) -> None:
    assert store.get("machine-key") is None
    sealed = cipher.encrypt("secret")
    key = store.get("machine-key")
    assert key is not None and len(base64.b64decode(key)) == 32
    cipher.encrypt("again")
    assert store.get("machine-key") == key
    assert SecretCipher(OwnerOnlyFileStore(store.path), "machine-key").decrypt(sealed) == "secret"


def test_cipher_uses_a_fresh_nonce_each_time(cipher: SecretCipher) -> None:
    sealed = [cipher.encrypt("same") for _ in range(20)]
    nonces = {base64.b64decode(value[4:])[:12] for value in sealed}
    assert len(set(sealed)) == 20 and len(nonces) == 20


def test_cipher_detects_tampering(cipher: SecretCipher) -> None:
    blob = bytearray(base64.b64decode(cipher.encrypt("secret")[4:]))
    for index in (0, 12, len(blob) - 1):
        changed = bytearray(blob)
        changed[index] ^= 0x01
        with pytest.raises(
            SecretCipherError, match="could not be decrypted with key 'machine-key'"
        ):
            cipher.decrypt("tm1:" + base64.b64encode(bytes(changed)).decode())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("plain base64 from Tentacle", "must start with 'tm1:'"),
        ("tm1:***", "must be base64"),
        ("tm1:" + base64.b64encode(b"short").decode(), "shorter than the 28 bytes"),
        (None, "must start with 'tm1:'"),
    ],
)
def test_cipher_rejects_malformed_values(cipher: SecretCipher, value: object, message: str) -> None:
    cipher.encrypt("make the key")
    with pytest.raises(SecretCipherError, match=message):
        cipher.decrypt(value)  # type: ignore[arg-type]


def test_cipher_with_the_wrong_key_fails(cipher: SecretCipher, tmp_path: Path) -> None:
    sealed = cipher.encrypt("secret")
    other = SecretCipher(OwnerOnlyFileStore(tmp_path / "other" / "store.json"), "machine-key")
    other.encrypt("gives it a different key")
    with pytest.raises(SecretCipherError, match="the key is not the one it was encrypted with"):
        other.decrypt(sealed)


def test_cipher_with_a_missing_key_fails_without_making_one(
    cipher: SecretCipher, store: OwnerOnlyFileStore
) -> None:
    sealed = cipher.encrypt("secret")
    store.delete("machine-key")
    with pytest.raises(SecretCipherError, match="Encryption key 'machine-key' is missing from"):
        cipher.decrypt(sealed)
    assert store.get("machine-key") is None


@pytest.mark.parametrize("bad_key", ["not base64!", base64.b64encode(b"too short").decode()])
def test_cipher_with_a_corrupt_key_fails(
    cipher: SecretCipher, store: OwnerOnlyFileStore, bad_key: str
) -> None:
    sealed = cipher.encrypt("secret")
    store.set("machine-key", bad_key)
    with pytest.raises(SecretCipherError, match="it must be 32 bytes in base64"):
        cipher.decrypt(sealed)
    with pytest.raises(SecretCipherError, match="it must be 32 bytes in base64"):
        cipher.encrypt("new")


def test_cipher_only_encrypts_text(cipher: SecretCipher) -> None:
    with pytest.raises(SecretCipherError, match="Only text can be encrypted, not bytes"):
        cipher.encrypt(b"bytes")  # type: ignore[arg-type]
