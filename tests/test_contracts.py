"""Wire contracts: JSON round trip for every type, Tentacle's field names, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CapabilitiesResponse,
    CompleteScriptCommand,
    ContractError,
    ExitCode,
    MutexEvent,
    MutexEventKind,
    MutexParty,
    MutexState,
    ProcessOutput,
    ProcessOutputSource,
    ProcessState,
    QuarantinedProcess,
    QuarantineEntry,
    ScriptFile,
    ScriptIsolationLevel,
    ScriptPhase,
    ScriptStatusRequest,
    ScriptStatusResponse,
    ScriptSummary,
    ScriptType,
    StartScriptCommand,
    format_timespan,
    parse,
    parse_timespan,
    ticket,
)

NOW = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
T = ticket("AbC123_-x")
PARTY = MutexParty(
    ticket=T, task_id="ServerTasks-1", level=ScriptIsolationLevel.NO_ISOLATION, since=NOW
)

EXAMPLES = [
    T,
    ScriptFile(name="dir/file.txt", contents=b"\x00\x01bytes", encryption_password="pw"),
    StartScriptCommand(
        script_ticket=T,
        task_id="ServerTasks-1",
        script_body="echo hi",
        scripts={ScriptType.BASH: "echo bash", ScriptType.POWERSHELL: "Write-Host ps"},
        isolation=ScriptIsolationLevel.NO_ISOLATION,
        script_isolation_mutex_timeout=timedelta(minutes=1, seconds=30),
        isolation_mutex_name="deploy",
        arguments=["a b", "c"],
        files=[ScriptFile(name="f", contents=b"x")],
        duration_to_wait_for_script_to_finish=timedelta(seconds=5),
    ),
    ScriptStatusRequest(ticket=T, last_log_sequence=42),
    CancelScriptCommand(ticket=T, last_log_sequence=3),
    AbandonScriptCommand(ticket=T, last_log_sequence=3),
    CompleteScriptCommand(ticket=T),
    ProcessOutput(source=ProcessOutputSource.STDERR, text="oops", occurred=NOW),
    ScriptStatusResponse(
        ticket=T,
        state=ProcessState.COMPLETE,
        exit_code=ExitCode.ABANDONED,
        logs=[ProcessOutput(source=ProcessOutputSource.DEBUG, text="d", occurred=NOW)],
        next_log_sequence=1,
    ),
    CapabilitiesResponse(supported_capabilities=["IScriptServiceV2", "AbandonScript"]),
    ScriptSummary(
        ticket=T,
        task_id="x",
        phase=ScriptPhase.CANCELLING,
        state=ProcessState.RUNNING,
        exit_code=0,
        mutex_name="m",
        isolation=ScriptIsolationLevel.FULL_ISOLATION,
        created=NOW,
        started=NOW,
        pid=12,
    ),
    PARTY,
    MutexState(name="m", holders=[PARTY], waiters=[PARTY]),
    MutexEvent(kind=MutexEventKind.QUEUED, name="m", party=PARTY, at=NOW),
    QuarantineEntry(
        ticket=T,
        task_id="x",
        since=NOW,
        processes=[QuarantinedProcess(pid=1, name="pwsh", create_time=1.5)],
        kill_attempts=2,
        last_attempt=NOW,
    ),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_json_round_trip(value):
    again = parse(type(value), value.to_json())
    assert again == value
    assert again.to_json() == value.to_json()


def test_wire_names_follow_tentacle():
    wire = json.loads(EXAMPLES[2].to_json())
    assert wire["ScriptTicket"] == {"TaskId": "AbC123_-x"}
    assert wire["ScriptIsolationMutexTimeout"] == "00:01:30"
    assert wire["Isolation"] == 0
    assert wire["Scripts"] == {"Bash": "echo bash", "PowerShell": "Write-Host ps"}
    assert wire["DurationToWaitForScriptToFinish"] == "00:00:05"
    assert wire["IsolationMutexName"] == "deploy"


def test_tickets_compare_ignoring_case():
    assert ticket("ABC") == ticket("abc")
    assert len({ticket("ABC"), ticket("abc")}) == 1


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 101, "sp ace", "dot.dot"])
def test_bad_tickets_are_refused_naming_the_field(bad):
    with pytest.raises(ContractError) as error:
        parse(ScriptStatusRequest, {"Ticket": {"TaskId": bad}})
    assert list(error.value.problems) == ["Ticket.TaskId"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../up", "a/../../b", "C:\\x", "\\\\server\\x"])
def test_file_names_that_escape_are_refused(name):
    with pytest.raises(ContractError) as error:
        parse(ScriptFile, {"Name": name})
    assert "Name" in error.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:00", timedelta(0)),
        ("01:02:03", timedelta(hours=1, minutes=2, seconds=3)),
        ("2.00:00:01.5", timedelta(days=2, seconds=1.5)),
    ],
)
def test_timespans(text, expected):
    assert parse_timespan(text) == expected
    assert parse_timespan(format_timespan(expected)) == expected


@pytest.mark.parametrize("bad", ["1:2", "25:00:00", "00:61:00", "soon", 5])
def test_bad_timespans_say_what_is_expected(bad):
    with pytest.raises(ContractError) as error:
        parse(
            StartScriptCommand,
            {"ScriptTicket": {"TaskId": "t"}, "ScriptIsolationMutexTimeout": bad},
        )
    assert "ScriptIsolationMutexTimeout" in error.value.problems


def test_malformed_json_and_unknown_fields():
    with pytest.raises(ContractError) as error:
        parse(CancelScriptCommand, b"{not json")
    assert error.value.problems
    with pytest.raises(ContractError) as error:
        parse(CancelScriptCommand, {"Ticket": {"TaskId": "t"}, "Force": True})
    assert "Force" in error.value.problems


def test_secrets_stay_out_of_repr_but_travel_on_the_wire():
    script_file = ScriptFile(name="f", contents=b"", encryption_password="hunter2")
    assert "hunter2" not in repr(script_file)
    assert "hunter2" in script_file.to_json()


def test_exit_codes_keep_tentacles_values():
    assert [c.value for c in ExitCode][1:] == [-41, -42, -43, -44, -45, -46, -47, -48]
