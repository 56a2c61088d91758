"""The shared crash-safe writer: modes, multi-file staging, kept identity, no temp litter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tentacle_manager.files.atomic import PendingFile, write_atomically

NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomically_sets_modes_and_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    write_atomically(
        PendingFile(tmp_path / "a", b"new a", 0o600), PendingFile(tmp_path / "b", b"b", 0o644)
    )
    assert (tmp_path / "a").read_bytes() == b"new a"
    assert (_mode(tmp_path / "a"), _mode(tmp_path / "b")) == (0o600, 0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_write_atomically_changes_nothing_when_staging_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").write_bytes(b"old a")
    (tmp_path / "b").write_bytes(b"old b")
    real_fsync = os.fsync
    calls: list[int] = []

    def failing_second_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_second_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(
            PendingFile(tmp_path / "a", b"new a", 0o600),
            PendingFile(tmp_path / "b", b"new b", 0o600),
        )
    assert (tmp_path / "a").read_bytes() == b"old a"
    assert (tmp_path / "b").read_bytes() == b"old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_keep_identity_keeps_an_existing_mode_and_uses_the_given_one_for_new_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "old").write_bytes(b"old")
    (tmp_path / "old").chmod(0o604)
    write_atomically(
        PendingFile(tmp_path / "old", b"x", 0o640, keep_identity=True),
        PendingFile(tmp_path / "new", b"y", 0o640, keep_identity=True),
    )
    assert (_mode(tmp_path / "old"), _mode(tmp_path / "new")) == (0o604, 0o640)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_keep_identity_as_root_keeps_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "service.config"
    path.write_bytes(b"old")
    os.chown(path, NOBODY, NOBODY)
    write_atomically(PendingFile(path, b"new", 0o640, keep_identity=True))
    assert (path.stat().st_uid, path.stat().st_gid) == (NOBODY, NOBODY)


def test_the_directory_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    synced: list[bool] = []

    def record(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    write_atomically(PendingFile(tmp_path / "a", b"a", 0o600))
    assert synced == [False, True]
