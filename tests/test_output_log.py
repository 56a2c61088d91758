"""Output.log: encoding, sequences, the sparse index, the commit point and recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tentacle_manager.agent.process.output_pump import OutputPump
from tentacle_manager.agent.workspace.output_log import (
    INDEX_STRIDE,
    LOG_FILE,
    Masker,
    OutputLogWriter,
    read_position,
    read_records,
)
from tentacle_manager.contracts import ProcessOutputSource

OUT = ProcessOutputSource.STDOUT


def lines(directory: Path, after: int = 0) -> list[str]:
    return [record.text for record in read_records(directory, after)[0]]


@pytest.mark.parametrize(
    "text",
    ["plain ascii", 'quotes " and \\ backslash', "tab\there", "ünïcödé ✓", "ctrl \x01\x1f", ""],
)
def test_every_line_round_trips(tmp_path, text):
    writer = OutputLogWriter(tmp_path)
    writer.write_lines(OUT, (text + "\n").encode(), 0)
    writer.close()
    (record,) = read_records(tmp_path, 0)[0]
    assert (record.source, record.text) == (OUT, text)
    assert record.occurred.tzinfo is not None


def test_lines_are_stored_as_written_under_a_block_header(tmp_path):
    writer = OutputLogWriter(tmp_path)
    writer.write_lines(OUT, b"one\ntwo \xff\n", 0)
    writer.write_text(ProcessOutputSource.DEBUG, "agent line")
    writer.close()
    header, first, second, debug_header, debug = (tmp_path / LOG_FILE).read_bytes().splitlines()
    name, _stamp, first_record, count, size = json.loads(header)
    assert (name, first_record, count, size) == ("stdout", 0, 2, len(b"one\ntwo \xff\n"))
    assert (first, second) == (b"one", b"two \xff")
    assert json.loads(debug_header)[:4] == ["debug", json.loads(debug_header)[1], 2, 1]
    assert debug == b"agent line"
    assert lines(tmp_path) == ["one", "two \ufffd", "agent line"]


def test_sequences_and_index_across_many_writes(tmp_path):
    writer = OutputLogWriter(tmp_path)
    expected = []
    for chunk in range(50):
        body = "".join(f"c{chunk} l{i}\n" for i in range(chunk % 7 + 1))
        writer.write_lines(OUT, body.encode(), 0)
        expected += body.splitlines()
        writer.write_text(ProcessOutputSource.DEBUG, f"debug {chunk}")
        expected.append(f"debug {chunk}")
    assert writer.position.count == len(expected)
    for after in range(0, len(expected) + 1, 7):
        assert lines(tmp_path, after) == expected[after:]
    writer.close()
    index_entries = (os.path.getsize(tmp_path / "Output.idx") - 32) // 16
    assert index_entries == -(-len(expected) // INDEX_STRIDE)


def test_nothing_past_the_commit_point_is_served_and_recovery_cuts_it(tmp_path):
    writer = OutputLogWriter(tmp_path)
    writer.write_lines(OUT, b"one\ntwo\n", 8)
    writer.close()
    with open(tmp_path / LOG_FILE, "ab") as log:  # a crash between the write and the commit
        log.write(b'["stdout","half-writ')
    assert lines(tmp_path) == ["one", "two"]
    reopened = OutputLogWriter(tmp_path)
    assert reopened.position.count == 2 and reopened.position.stdout_offset == 8
    reopened.write_text(OUT, "three")
    reopened.close()
    assert lines(tmp_path) == ["one", "two", "three"]


def test_corrupt_record_stops_reading_with_tentacles_message(tmp_path):
    writer = OutputLogWriter(tmp_path)
    writer.write_lines(OUT, b"good\n", 0)
    writer.write_lines(OUT, b"also good\n", 0)
    writer.close()
    header, good, _second_header, also = (tmp_path / LOG_FILE).read_bytes().splitlines()
    damaged = b"\n".join([header, good, b"[not a header", also]) + b"\n"
    (tmp_path / LOG_FILE).write_bytes(damaged)
    records = read_records(tmp_path, 0)[0]
    assert [r.text for r in records] == [
        "good",
        "Corrupt Tentacle log at line 2, no more logs will be read",
    ]
    assert records[1].source is ProcessOutputSource.STDERR


def test_masking_applies_to_both_paths(tmp_path):
    writer = OutputLogWriter(tmp_path, Masker(["s3cret"]))
    writer.write_lines(OUT, b"pw=s3cret\n", 0)
    writer.write_lines(OUT, b'"quoted" s3cret\n', 0)
    writer.write_text(OUT, "agent says s3cret")
    writer.close()
    assert lines(tmp_path) == ["pw=********", '"quoted" ********', "agent says ********"]


def test_pump_splits_cr_lf_and_crlf_and_keeps_a_final_unterminated_line(tmp_path):
    import asyncio

    raw = tmp_path / "raw.out"
    raw.write_bytes(b"a\r\nb\rc\nprogress 1\rprogress 2\r")
    writer = OutputLogWriter(tmp_path)
    pump = OutputPump(writer, raw, tmp_path / "none.err")
    assert pump.step() > 0
    with open(raw, "ab") as handle:
        handle.write(b"\nlast without newline")
    asyncio.run(pump.finish())
    writer.close()
    assert lines(tmp_path) == ["a", "b", "c", "progress 1", "progress 2", "last without newline"]
    assert read_position(tmp_path).stdout_offset == raw.stat().st_size


@pytest.mark.parametrize("tail", [b"partial", b'"quoted partial', "ünï".encode()[:-1]])
def test_only_the_complete_lines_are_written(tmp_path, tail):
    writer = OutputLogWriter(tmp_path)
    writer.write_lines(OUT, b"first\nsecond\n" + tail, 0, end=13)
    writer.close()
    assert lines(tmp_path) == ["first", "second"]
    assert read_position(tmp_path).size == (tmp_path / LOG_FILE).stat().st_size


def test_pump_cuts_a_line_longer_than_the_limit(tmp_path, monkeypatch):
    from tentacle_manager.agent.process import output_pump

    monkeypatch.setattr(output_pump, "FIRST_READ_SIZE", 16)
    monkeypatch.setattr(output_pump, "READ_SIZE", 32)
    monkeypatch.setattr(output_pump, "MAX_LINE", 64)
    raw = tmp_path / "raw.out"
    raw.write_bytes(b"short\n" + b"x" * 100 + b"\nafter\n")
    writer = OutputLogWriter(tmp_path)
    pump = OutputPump(writer, raw, tmp_path / "none.err")
    while pump.step():
        pass
    pump.step(final=True)
    writer.close()
    assert lines(tmp_path) == ["short", "x" * 64, "x" * 36, "after"]


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
def test_a_line_cut_at_the_limit_does_not_leave_an_empty_record(tmp_path, monkeypatch, terminator):
    from tentacle_manager.agent.process import output_pump

    monkeypatch.setattr(output_pump, "FIRST_READ_SIZE", 16)
    monkeypatch.setattr(output_pump, "READ_SIZE", 32)
    monkeypatch.setattr(output_pump, "MAX_LINE", 64)
    raw = tmp_path / "raw.out"
    raw.write_bytes(b"a" * 64 + terminator + b"next\n")
    writer = OutputLogWriter(tmp_path)
    pump = OutputPump(writer, raw, tmp_path / "none.err")
    while pump.step():
        pass
    writer.close()
    assert lines(tmp_path) == ["a" * 64, "next"]
