"""ScriptServiceV2 behaviours (reference section 7, P0 and P1), against real bash processes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from tentacle_manager.agent.workspace.disk_space import NotEnoughDiskSpaceError
from tentacle_manager.agent.workspace.output_log import read_position
from tentacle_manager.contracts import (
    CancelScriptCommand,
    Capability,
    CompleteScriptCommand,
    ContractError,
    ExitCode,
    ProcessOutputSource,
    ProcessState,
    ScriptIsolationLevel,
    ScriptStatusRequest,
    ScriptType,
    ticket,
)
from tests.support import (
    start_command,
    texts,
    wait_complete,
    wait_for_status,
    wait_until,
)

FULL = ScriptIsolationLevel.FULL_ISOLATION
NONE = ScriptIsolationLevel.NO_ISOLATION


async def test_exit_code_and_streams(service, tmp_path):
    status = await service.start_script(
        start_command("exit99", "echo out; echo err >&2; exit 99", wait=timedelta(seconds=10))
    )
    assert status.state is ProcessState.COMPLETE
    assert status.exit_code == 99
    by_text = {record.text: record.source for record in status.logs}
    assert by_text["out"] is ProcessOutputSource.STDOUT
    assert by_text["err"] is ProcessOutputSource.STDERR


async def test_log_starts_with_the_mutex_block(service):
    status = await service.start_script(start_command("first", "true", wait=timedelta(seconds=10)))
    assert texts(status)[:3] == [
        "##octopus[stdout-verbose]",
        "Acquiring isolation mutex RunningScript with FullIsolation in ServerTasks-first",
        "##octopus[stdout-default]",
    ]
    assert all(r.source is ProcessOutputSource.STDOUT for r in status.logs[:3])


async def test_duplicate_start_runs_once_and_replies_with_current_status(service, tmp_path):
    marker = tmp_path / "runs"
    body = f"echo run >> {marker}"
    first = await service.start_script(start_command("dup", body, wait=timedelta(seconds=10)))
    again = await service.start_script(start_command("DUP", "echo something else; exit 3"))
    assert first.exit_code == again.exit_code == 0
    assert texts(again) == texts(first)
    assert marker.read_text() == "run\n"


async def test_thousand_concurrent_starts_of_one_ticket_run_it_once(service, tmp_path):
    marker = tmp_path / "runs"
    command = start_command("same", f"echo run >> {marker}")
    replies = await asyncio.gather(*(service.start_script(command) for _ in range(1000)))
    assert {reply.ticket for reply in replies} == {ticket("same")}
    await wait_complete(service, "same")
    assert marker.read_text() == "run\n"


async def test_full_isolation_blocks_until_the_holder_completes(service, tmp_path):
    release = tmp_path / "release"
    started_b = tmp_path / "b-started"
    await service.start_script(
        start_command("a", f"while [ ! -f {release} ]; do sleep 0.01; done", task="A")
    )
    await wait_for_status(service, "a", lambda s: s.state is ProcessState.RUNNING)
    for level in (FULL, NONE):
        name = f"b{level.value}"
        await service.start_script(
            start_command(name, f"touch {started_b}{level.value}", task="B", isolation=level)
        )
    await asyncio.sleep(0.3)
    for level in (FULL, NONE):
        status = await service.get_status(ScriptStatusRequest(ticket=ticket(f"b{level.value}")))
        assert status.state is ProcessState.PENDING
        assert not Path(f"{started_b}{level.value}").exists()
    release.touch()
    for level in (FULL, NONE):
        assert (await wait_complete(service, f"b{level.value}")).exit_code == 0


@pytest.mark.parametrize(
    ("first", "second", "mutexes"),
    [(NONE, NONE, ("m", "m")), (FULL, FULL, ("m1", "m2"))],
    ids=["two-readers-same-name", "two-writers-different-names"],
)
async def test_compatible_scripts_run_at_the_same_time(service, tmp_path, first, second, mutexes):
    # Each script waits until both have started: only possible if they run concurrently.
    a, b = tmp_path / "a", tmp_path / "b"
    await service.start_script(
        start_command(
            "x1",
            f"touch {a}; while [ ! -f {b} ]; do sleep 0.01; done",
            isolation=first,
            mutex=mutexes[0],
        )
    )
    await service.start_script(
        start_command(
            "x2",
            f"touch {b}; while [ ! -f {a} ]; do sleep 0.01; done",
            isolation=second,
            mutex=mutexes[1],
        )
    )
    assert (await wait_complete(service, "x1", timeout=10)).exit_code == 0
    assert (await wait_complete(service, "x2", timeout=10)).exit_code == 0


async def test_release_hands_over_within_milliseconds(service, tmp_path):
    release = tmp_path / "release"
    await service.start_script(
        start_command("holder", f"while [ ! -f {release} ]; do sleep 0.005; done")
    )
    await wait_for_status(service, "holder", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("next", "true"))
    events = []
    service.isolation.subscribe(lambda event: events.append((event.kind.value, event.at)))
    release.touch()
    await wait_complete(service, "next")
    released = next(at for kind, at in events if kind == "released")
    acquired = next(at for kind, at in events if kind == "acquired")
    assert (acquired - released).total_seconds() < 0.05


async def test_mutex_timeout_gives_minus_44_and_names_the_holder(service, tmp_path):
    release = tmp_path / "release"
    never = tmp_path / "never"
    await service.start_script(
        start_command("holds", f"while [ ! -f {release} ]; do sleep 0.01; done", task="A")
    )
    await wait_for_status(service, "holds", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(
        start_command("times-out", f"touch {never}", task="B", timeout=timedelta(seconds=1))
    )
    status = await wait_complete(service, "times-out")
    release.touch()
    assert status.exit_code == ExitCode.TIMEOUT
    assert not never.exists()
    assert texts(status)[-2:] == [
        "This task waited more than 0 minutes and timed out. Task [A](~/app#/tasks/A) is still "
        "running.",
        "Script execution timed out.",
    ]
    assert "task not found" not in " ".join(texts(status))


async def test_cancel_while_waiting_gives_minus_43_quickly(service, tmp_path):
    release = tmp_path / "release"
    never = tmp_path / "never"
    await service.start_script(
        start_command("holder", f"while [ ! -f {release} ]; do sleep 0.01; done", task="A")
    )
    await wait_for_status(service, "holder", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("waiter", f"touch {never}", task="B"))
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await service.cancel_script(CancelScriptCommand(ticket=ticket("waiter")))
    status = await wait_complete(service, "waiter")
    assert loop.time() - asked < 0.5  # the issue asks for 100 ms; generous on shared CI
    assert status.exit_code == ExitCode.CANCELED
    assert texts(status)[-2:] == [
        "This task was canceled before it could start. Task [A](~/app#/tasks/A) is still running.",
        "Script execution canceled.",
    ]
    holder = await service.get_status(ScriptStatusRequest(ticket=ticket("holder")))
    assert holder.state is ProcessState.RUNNING
    release.touch()
    await wait_complete(service, "holder")
    assert not never.exists()


async def test_first_wait_block_appears_after_about_100_ms(service, tmp_path):
    release = tmp_path / "release"
    await service.start_script(
        start_command("h", f"while [ ! -f {release} ]; do sleep 0.01; done", task="A")
    )
    await wait_for_status(service, "h", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("w", "true", task="B"))
    status = await wait_for_status(service, "w", lambda s: "##octopus[stdout-wait]" in texts(s))
    wait_at = texts(status).index("##octopus[stdout-wait]")
    assert texts(status)[wait_at + 1] == (
        "Waiting for the script in task [A](~/app#/tasks/A) to finish as this script requires "
        "that no other Octopus scripts are executing on this target at the same time."
    )
    release.touch()
    await wait_complete(service, "w")


async def test_cancel_running_kills_the_tree_with_a_real_nonzero_code(service, tmp_path):
    child_pid = tmp_path / "child.pid"
    await service.start_script(start_command("run", f"sleep 300 & echo $! > {child_pid}; wait"))
    await wait_until(child_pid.exists)
    await service.cancel_script(CancelScriptCommand(ticket=ticket("run")))
    status = await wait_complete(service, "run", timeout=10)
    assert status.exit_code not in (0, ExitCode.CANCELED)
    assert "Script execution canceled." not in texts(status)
    from tests.support import pid_alive

    assert not pid_alive(int(child_pid.read_text()))


async def test_unknown_ticket_is_minus_45_and_creates_nothing(service):
    for call in (
        service.get_status(ScriptStatusRequest(ticket=ticket("nobody"))),
        service.cancel_script(CancelScriptCommand(ticket=ticket("nobody"))),
    ):
        status = await call
        assert (status.state, status.exit_code, status.logs) == (
            ProcessState.COMPLETE,
            ExitCode.UNKNOWN_SCRIPT,
            [],
        )
    await service.complete_script(CompleteScriptCommand(ticket=ticket("nobody")))
    assert list(service.work_root.iterdir()) == []


async def test_logs_after_a_sequence(service):
    status = await service.start_script(
        start_command(
            "seq", "for i in $(seq 1 500); do echo line$i; done", wait=timedelta(seconds=10)
        )
    )
    total = status.next_log_sequence
    assert total == len(status.logs)
    for k in (0, 1, 63, 64, 65, 200, total - 1, total):
        later = await service.get_status(
            ScriptStatusRequest(ticket=ticket("seq"), last_log_sequence=k)
        )
        assert later.next_log_sequence == total
        assert texts(later) == texts(status)[k:]
    beyond = await service.get_status(
        ScriptStatusRequest(ticket=ticket("seq"), last_log_sequence=total + 5)
    )
    assert (beyond.logs, beyond.next_log_sequence) == ([], total + 5)
    negative = await service.get_status(
        ScriptStatusRequest(ticket=ticket("seq"), last_log_sequence=-3)
    )
    assert texts(negative) == texts(status)


async def test_duration_to_wait(service):
    quick = await service.start_script(
        start_command("quick", "sleep 0.1; exit 4", wait=timedelta(seconds=5))
    )
    assert (quick.state, quick.exit_code) == (ProcessState.COMPLETE, 4)
    loop = asyncio.get_running_loop()
    began = loop.time()
    slow = await service.start_script(start_command("slow", "sleep 3", wait=timedelta(seconds=0.5)))
    assert (slow.state, slow.exit_code) == (ProcessState.RUNNING, 0)
    assert 0.4 < loop.time() - began < 2.5
    began = loop.time()
    immediate = await service.start_script(start_command("now", "sleep 3"))
    assert immediate.state is not ProcessState.COMPLETE
    assert loop.time() - began < 0.5


async def test_complete_deletes_the_workspace_and_forgets_the_ticket(service):
    await service.start_script(start_command("done", "echo hi", wait=timedelta(seconds=10)))
    workspace = service.work_root / "done"
    assert workspace.is_dir()
    await service.complete_script(CompleteScriptCommand(ticket=ticket("done")))
    assert not workspace.exists()
    status = await service.get_status(ScriptStatusRequest(ticket=ticket("done")))
    assert status.exit_code == ExitCode.UNKNOWN_SCRIPT


async def test_default_mutex_name_and_zero_timeout_waits_without_limit(service, tmp_path):
    release = tmp_path / "release"
    await service.start_script(start_command("h", f"while [ ! -f {release} ]; do sleep 0.01; done"))
    await wait_for_status(service, "h", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("w", "true", timeout=timedelta(0)))
    await asyncio.sleep(1.2)
    (state,) = service.isolation.snapshot()
    assert state.name == "RunningScript"
    assert [w.ticket for w in state.waiters] == [ticket("w")]
    release.touch()
    assert (await wait_complete(service, "w")).exit_code == 0


async def test_state_file_life(service, tmp_path):
    release = tmp_path / "release"
    await service.start_script(start_command("h", f"while [ ! -f {release} ]; do sleep 0.01; done"))
    await wait_for_status(service, "h", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("life", "exit 5"))
    state_file = service.work_root / "life" / "scriptstate.json"
    pending = json.loads(state_file.read_text())
    assert pending["State"] == 0
    assert pending["Created"] and pending["Started"] is None and pending["Completed"] is None
    assert pending["ExitCode"] is None and pending["RanToCompletion"] is None
    held = json.loads((service.work_root / "h" / "scriptstate.json").read_text())
    assert held["State"] == 1 and held["Started"]
    release.touch()
    await wait_complete(service, "life")
    done = json.loads(state_file.read_text())
    assert (done["State"], done["ExitCode"], done["RanToCompletion"]) == (2, 5, True)
    assert done["Completed"]
    assert sorted(p.name for p in state_file.parent.iterdir() if "scriptstate" in p.name) == [
        "scriptstate.json"
    ]  # no backup litter


async def test_capabilities_advertise_both_abandon_names(service):
    names = service.capabilities().supported_capabilities
    assert Capability.SCRIPT_SERVICE_V2 in names
    assert {"AbandonScript", "AbandonScriptV2"} <= set(names)


async def test_bash_body_wins_and_crlf_becomes_lf(service):
    command = start_command(
        "bashbody",
        "echo main body",
        scripts={ScriptType.BASH: "echo bash body\r\necho second\r\n"},
        wait=timedelta(seconds=10),
    )
    status = await service.start_script(command)
    assert "bash body" in texts(status) and "second" in texts(status)
    assert "main body" not in texts(status)
    assert b"\r" not in (service.work_root / "bashbody" / "Bootstrap.sh").read_bytes()


async def test_working_directory_files_arguments_and_environment(service):
    from tentacle_manager.contracts import ScriptFile

    command = start_command(
        "env",
        'pwd; cat sub/data.txt; printf "<%s>\\n" "$@"; '
        'echo "$TentacleHome"; echo "$TentacleJournal"',
        files=[ScriptFile(name="sub/data.txt", contents=b"file contents\n")],
        arguments=["one two", "three"],
        wait=timedelta(seconds=10),
    )
    status = await service.start_script(command)
    out = [r.text for r in status.logs if r.source is ProcessOutputSource.STDOUT][3:]
    assert out[0] == str(service.work_root / "env")
    assert out[1] == "file contents"
    assert out[2:4] == ["<one two>", "<three>"]
    assert out[4] == str(service.home)
    assert out[5] == str(service.home / "DeploymentJournal.xml")


async def test_shell_that_cannot_start_gives_minus_42(tmp_path):
    from tentacle_manager.agent.process.shell import Bash
    from tentacle_manager.agent.scripts import ScriptService
    from tests.support import fast_settings

    service = ScriptService(
        tmp_path / "home", fast_settings(), shell=Bash(executable=str(tmp_path / "no-bash"))
    )
    async with service:
        status = await service.start_script(start_command("x", "true", wait=timedelta(seconds=5)))
    assert status.exit_code == ExitCode.SHELL_INVOCATION_ERROR
    assert texts(status)[-1].startswith(f"An exception was thrown when invoking {tmp_path}")


async def test_low_disk_refuses_to_start_and_runs_nothing(make_service, tmp_path):
    service = await make_service(minimum_free_disk_bytes=1 << 60)
    with pytest.raises(NotEnoughDiskSpaceError, match="does not have enough free disk space"):
        await service.start_script(start_command("full", "true"))
    assert not (service.work_root / "full").exists()


async def test_sensitive_values_are_masked(make_service):
    service = await make_service(sensitive_values=("hunter2",))
    status = await service.start_script(
        start_command("mask", "echo password=hunter2; echo hunter2 >&2", wait=timedelta(seconds=5))
    )
    assert "password=********" in texts(status)
    assert "hunter2" not in " ".join(texts(status))
    assert b"hunter2" not in (service.work_root / "mask" / "Output.log").read_bytes()


async def test_cancel_on_a_complete_script_changes_nothing(service):
    await service.start_script(start_command("fin", "exit 3", wait=timedelta(seconds=5)))
    status = await service.cancel_script(CancelScriptCommand(ticket=ticket("fin")))
    assert (status.state, status.exit_code) == (ProcessState.COMPLETE, 3)


async def test_cancel_before_start_is_remembered(service, tmp_path):
    """Tentacle forgets a cancel for a ticket it has not seen; a late start then runs it."""
    marker = tmp_path / "ran"
    await service.cancel_script(CancelScriptCommand(ticket=ticket("late")))
    status = await service.start_script(
        start_command("late", f"touch {marker}", wait=timedelta(seconds=5))
    )
    assert status.exit_code == ExitCode.CANCELED
    assert not marker.exists()
    assert texts(status)[-1] == "Script execution canceled."


async def test_undecodable_bytes_and_a_one_megabyte_line(service):
    body = "printf 'bad \\xff\\xfe bytes\\n'; head -c 1048576 /dev/zero | tr '\\0' 'x'; echo"
    status = await service.start_script(start_command("bytes", body, wait=timedelta(seconds=10)))
    assert "bad \ufffd\ufffd bytes" in texts(status)
    assert "x" * 1048576 in texts(status)


async def test_bad_requests_name_the_field():
    from tentacle_manager.contracts import StartScriptCommand, parse

    with pytest.raises(ContractError) as error:
        parse(StartScriptCommand, {"ScriptTicket": {"TaskId": "../etc"}, "ScriptBody": "x"})
    assert "ScriptTicket.TaskId" in error.value.problems
    with pytest.raises(ContractError) as error:
        parse(StartScriptCommand, {"ScriptTicket": {"TaskId": "ok"}, "Bogus": 1})
    assert "Bogus" in error.value.problems


async def test_output_log_commit_point_matches_what_was_served(service):
    status = await service.start_script(
        start_command("pos", "seq 1 1000", wait=timedelta(seconds=10))
    )
    assert read_position(service.work_root / "pos").count == status.next_log_sequence


async def test_the_service_cleans_stale_finished_workspaces(make_service, tmp_path):
    release = tmp_path / "release"
    service = await make_service(cleaner_interval=0.2, cleaner_delete_older_than=0.5)
    await service.start_script(start_command("old", "true", wait=timedelta(seconds=5)))
    await service.start_script(
        start_command("busy", f"while [ ! -f {release} ]; do sleep 0.01; done", mutex="other")
    )
    await wait_until(lambda: not (service.work_root / "old").exists(), timeout=10)
    assert (service.work_root / "busy").is_dir()
    release.touch()
    await wait_complete(service, "busy")


async def test_converted_raw_output_is_released_while_the_script_runs(service, tmp_path):
    """Output is written to disk once: raw bytes already in Output.log are punched out."""
    done = tmp_path / "written"
    release = tmp_path / "release"
    body = (
        f"head -c 4000000 /dev/zero | tr '\\0' 'x' | fold -w 99; touch {done}; "
        f"while [ ! -f {release} ]; do sleep 0.01; done"
    )
    await service.start_script(start_command("big", body))
    await wait_until(done.exists)
    await wait_for_status(service, "big", lambda s: s.next_log_sequence > 40_000)
    raw = service.work_root / "big" / "Output.stdout.raw"
    assert raw.stat().st_size >= 4_000_000
    assert raw.stat().st_blocks * 512 < 1_000_000  # the converted part no longer uses disk
    release.touch()
    status = await wait_complete(service, "big")
    assert status.exit_code == 0
