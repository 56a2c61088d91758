"""The log viewer's line index: offsets and lines against Python's own splitting of real files.

Chunks are made tiny (a few bytes, read in even smaller pieces) so that every case crosses many
chunk borders, and the storage blocks of offsets hold four entries, so that ranges cross blocks
too.
"""

from __future__ import annotations

import asyncio
import os
from itertools import accumulate
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tentacle_manager.diagnostics import log_index
from tentacle_manager.diagnostics.log_index import Extent, FileChange, LogIndex

CASES = {
    "lf": b"one\ntwo\nthree\n",
    "crlf": b"one\r\ntwo\r\n\r\nfour\r\n",
    "no final newline": b"one\ntwo\nlast without newline",
    "crlf without final newline": b"one\r\ntwo",
    "empty file": b"",
    "only newlines": b"\n\n\n",
    "one huge line": b"x" * 300_000 + b"\n",
    "one huge line without newline": b"y" * 300_000,
    "unicode": "ünïcödé ✓\n日本語\n".encode(),
}


@pytest.fixture(autouse=True)
def small_blocks_and_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offsets stored four to a block, files read five bytes at a time within a chunk."""
    monkeypatch.setattr(log_index, "_BLOCK_ENTRIES", 4)
    monkeypatch.setattr(log_index, "READ_BYTES", 5)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def indexed(path: Path, chunk: int = 7, first: int = 3) -> LogIndex:
    index = LogIndex(path, chunk_bytes=chunk, first_chunk_bytes=first)
    asyncio.run(index.update())
    return index


def expected_starts(data: bytes) -> list[int]:
    """Line starts then the end of the last line, from bytes.splitlines (no lone CR here)."""
    return [0, *accumulate(len(line) for line in data.splitlines(keepends=True))]


def expected_lines(data: bytes) -> list[str]:
    return [line.decode("utf-8", "replace") for line in data.splitlines()]


@pytest.mark.parametrize("name", CASES)
def test_offsets_and_lines_equal_splitlines(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = CASES[name]
    monkeypatch.setattr(log_index, "READ_BYTES", max(5, len(data) // 100))
    index = indexed(write(tmp_path / "log.txt", data), chunk=max(7, len(data) // 40))
    count = len(data.splitlines())
    assert index.line_count == count
    assert index.boundaries(0, count).tolist() == expected_starts(data)
    assert index.lines(0, count) == expected_lines(data)
    assert index.extent.done and index.extent.indexed_bytes == len(data)


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.sampled_from([b"a", b"\xc3\xa9", b"\n", b"\r\n", b"\xff", b" "])))
def test_any_mix_of_endings_and_bytes_equals_splitlines(tmp_path_factory, data) -> None:
    data = b"".join(data)
    index = indexed(write(tmp_path_factory.mktemp("h") / "log.txt", data), chunk=5, first=2)
    count = len(data.splitlines())
    assert index.line_count == count
    assert index.boundaries(0, count).tolist() == expected_starts(data)
    assert index.lines(0, count) == expected_lines(data)


def test_a_lone_carriage_return_ends_no_line(tmp_path: Path) -> None:
    index = indexed(write(tmp_path / "log.txt", b"progress 10%\rprogress 20%\ndone\n"))
    assert index.lines(0, index.line_count) == ["progress 10%\rprogress 20%", "done"]


def test_undecodable_bytes_are_replaced_not_raised(tmp_path: Path) -> None:
    index = indexed(write(tmp_path / "log.txt", b"ok\nbad \xff\xfe here\ncut \xe2\x9c\n"))
    assert index.lines(0, 3) == ["ok", "bad \ufffd\ufffd here", "cut \ufffd"]


def test_ranges_are_read_by_offsets_and_clamped(tmp_path: Path) -> None:
    data = "".join(f"line {i}\n" for i in range(100)).encode()
    index = indexed(write(tmp_path / "log.txt", data))
    assert index.lines(40, 43) == ["line 40", "line 41", "line 42"]
    assert index.lines(-5, 2) == ["line 0", "line 1"]
    assert index.lines(98, 500) == ["line 98", "line 99"]
    assert index.lines(50, 50) == [] and index.lines(200, 300) == []
    assert index.boundaries(10, 12).tolist() == [70, 78, 86]
    assert index.lines(10, 11, max_bytes=4) == ["line"]


def test_progress_comes_per_chunk_and_early_lines_are_readable_before_the_end(
    tmp_path: Path,
) -> None:
    data = "".join(f"line {i}\n" for i in range(2000)).encode()
    index = LogIndex(write(tmp_path / "log.txt", data), chunk_bytes=4096, first_chunk_bytes=512)
    seen: list[Extent] = []
    first_screen: list[list[str]] = []

    def progress(extent: Extent) -> None:
        if not seen:
            first_screen.append(index.lines(0, 5))
        seen.append(extent)

    asyncio.run(index.update(progress))
    assert first_screen == [[f"line {i}" for i in range(5)]]
    assert not seen[0].done and seen[0].indexed_bytes == 512
    assert [e.indexed_bytes for e in seen] == sorted(e.indexed_bytes for e in seen)
    assert len(seen) == 1 + -(-(len(data) - 512) // 4096)
    assert seen[-1] == Extent(2000, 2000, len(data), len(data)) and seen[-1].fraction == 1.0


def test_growth_extends_from_where_indexing_stopped(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", b"one\ntwo\nhalf")
    index = indexed(path)
    assert (index.line_count, index.extent.complete_lines) == (3, 2)
    with open(path, "ab") as file:
        file.write(b" done\r\nfour\n")
    assert asyncio.run(index.update()) is FileChange.GREW
    assert index.lines(0, 10) == ["one", "two", "half done", "four"]
    assert index.extent == Extent(4, 4, path.stat().st_size, path.stat().st_size)
    assert asyncio.run(index.update()) is FileChange.UNCHANGED
    assert index.line_count == 4


def test_a_truncated_file_is_indexed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", b"old one\nold two\nold three\n")
    index = indexed(path)
    with open(path, "r+b") as file:
        file.truncate(0)
        file.write(b"new\n")
    assert asyncio.run(index.update()) is FileChange.REPLACED
    assert index.lines(0, 10) == ["new"]


def test_a_rotated_file_is_indexed_again_even_when_longer(tmp_path: Path) -> None:
    path = write(tmp_path / "OctopusTentacle.txt", b"yesterday\n")
    index = indexed(path)
    path.rename(tmp_path / "OctopusTentacle.0.txt")
    write(path, b"today, a longer first line\nand a second\n")
    assert asyncio.run(index.update()) is FileChange.REPLACED
    assert index.lines(0, 10) == ["today, a longer first line", "and a second"]


def test_a_file_rewritten_in_place_to_the_same_size_is_indexed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", b"aaaa\nbbbb\n")
    index = indexed(path)
    with open(path, "r+b") as file:
        file.write(b"cc\ndd\neeee\nff\n")
    assert asyncio.run(index.update()) is FileChange.REPLACED
    assert index.lines(0, 10) == ["cc", "dd", "eeee", "ff"]


def test_a_missing_file_raises_on_update_and_reads_as_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", b"kept\nlines\n")
    index = indexed(path)
    os.remove(path)
    with pytest.raises(FileNotFoundError):
        asyncio.run(index.update())
    assert index.line_count == 2
    assert index.lines(0, 5) == ["", ""]
    assert index.read_block(0, 2, bytearray(100)).line_count == 0


def test_read_block_takes_whole_lines_that_fit_and_cuts_one_longer_line(tmp_path: Path) -> None:
    data = b"aaaa\nbbbb\ncccc\n" + b"L" * 50 + b"\nend"
    index = indexed(write(tmp_path / "log.txt", data))
    buffer = bytearray(12)
    block = index.read_block(0, 10, buffer)
    assert (block.first_line, block.line_count, block.text()) == (0, 2, "aaaa\nbbbb\n")
    assert index.read_block(1, 2, buffer).text() == "bbbb\n"
    long_line = index.read_block(3, 10, buffer)
    assert (long_line.line_count, long_line.text()) == (1, "L" * 12)
    last = index.read_block(4, 10, buffer)
    assert (last.line_count, last.text()) == (1, "end")
    assert index.read_block(5, 10, buffer).line_count == 0


def test_storage_blocks_hold_offsets_without_copying_on_growth() -> None:
    ends = log_index._LineEnds()
    ends.append(np.arange(1, 11, dtype=np.int64) * 10)
    ends.append(np.array([110, 120], dtype=np.int64))
    assert ends.values(0, 12).tolist() == list(range(10, 130, 10))
    assert ends.values(3, 9).tolist() == [40, 50, 60, 70, 80, 90]
    assert ends.values(5, 5).tolist() == []
    assert [ends.count_at_most(offset, 12) for offset in (5, 10, 45, 80, 200)] == [0, 1, 4, 8, 12]
    assert ends.count_at_most(200, 6) == 6


@pytest.mark.parametrize("how", ["rotated", "truncated"])
def test_a_file_replaced_while_being_indexed_is_indexed_again_next_time(
    tmp_path: Path, how: str
) -> None:
    path = write(tmp_path / "log.txt", "".join(f"old {i}\n" for i in range(500)).encode())
    index = LogIndex(path, chunk_bytes=256, first_chunk_bytes=64)

    def replace_after_the_first_chunk(extent: Extent) -> None:
        if extent.indexed_bytes == 64:
            if how == "rotated":
                path.rename(tmp_path / "log.0.txt")  # the new file comes only later
            else:
                write(path, b"new one\nnew two\n")

    assert asyncio.run(index.update(replace_after_the_first_chunk)) is FileChange.GREW
    assert not index.extent.done
    if how == "rotated":
        write(path, b"new one\nnew two\n")
    assert asyncio.run(index.update()) is FileChange.REPLACED
    assert index.lines(0, 10) == ["new one", "new two"]
