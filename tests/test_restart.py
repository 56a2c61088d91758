"""A new service over the same home knows every ticket; live scripts are re-adopted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import timedelta

from tentacle_manager.contracts import (
    CancelScriptCommand,
    ExitCode,
    ProcessState,
    ScriptStatusRequest,
    ticket,
)
from tests.support import (
    pid_alive,
    start_command,
    texts,
    wait_complete,
    wait_for_status,
    wait_until,
)


async def test_live_script_is_readopted_keeps_its_mutex_and_its_exit_is_observed(
    make_service, tmp_path
):
    release = tmp_path / "release"
    pid_file = tmp_path / "pid"
    body = (
        f"echo $$ > {pid_file}; echo before; "
        f"while [ ! -f {release} ]; do sleep 0.01; done; echo after; exit 17"
    )
    first = await make_service()
    await first.start_script(start_command("long", body, task="A", mutex="deploy"))
    await wait_for_status(first, "long", lambda s: "before" in texts(s))
    await first.close()  # the agent stops; the script carries on
    pid = int(pid_file.read_text())
    assert pid_alive(pid)

    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("long")))
    assert status.state is ProcessState.RUNNING
    (mutex,) = second.isolation.snapshot()
    assert (mutex.name, [h.ticket for h in mutex.holders]) == ("deploy", [ticket("long")])
    await second.start_script(start_command("newcomer", "echo ran", task="B", mutex="deploy"))
    await asyncio.sleep(0.3)
    newcomer = await second.get_status(ScriptStatusRequest(ticket=ticket("newcomer")))
    assert newcomer.state is ProcessState.PENDING  # the re-adopted script still holds the mutex

    release.touch()
    status = await wait_complete(second, "long")
    # Not our child any more: its exit is seen, its status went to the old agent.
    assert status.exit_code == ExitCode.UNKNOWN_RESULT
    assert "before" in texts(status) and "after" in texts(status)  # output still captured
    assert any("re-adopted" in line for line in texts(status))
    assert (await wait_complete(second, "newcomer")).exit_code == 0


async def test_readopted_script_can_be_cancelled(make_service, tmp_path):
    pid_file = tmp_path / "pid"
    first = await make_service()
    await first.start_script(start_command("loop", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    await first.close()
    second = await make_service()
    await second.cancel_script(CancelScriptCommand(ticket=ticket("loop")))
    status = await wait_complete(second, "loop", timeout=10)
    assert status.exit_code not in (0, ExitCode.CANCELED)
    assert not pid_alive(int(pid_file.read_text()))


async def test_script_that_ended_while_the_agent_was_down(make_service, tmp_path):
    release = tmp_path / "release"
    pid_file = tmp_path / "pid"
    body = f"echo $$ > {pid_file}; while [ ! -f {release} ]; do sleep 0.01; done; echo late; exit 3"
    first = await make_service()
    await first.start_script(start_command("ended", body))
    await wait_until(pid_file.exists)
    await first.close()
    release.touch()
    await wait_until(lambda: not pid_alive(int(pid_file.read_text())))
    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("ended")))
    assert (status.state, status.exit_code) == (ProcessState.COMPLETE, ExitCode.UNKNOWN_RESULT)
    assert "late" in texts(status)  # output written while no agent ran is not lost


async def test_script_killed_while_the_agent_was_down_is_minus_46(make_service, tmp_path):
    pid_file = tmp_path / "pid"
    first = await make_service()
    await first.start_script(start_command("killed", f"echo $$ > {pid_file}; exec sleep 300"))
    await wait_until(pid_file.exists)
    before = await first.get_status(ScriptStatusRequest(ticket=ticket("killed")))
    await first.close()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    await wait_until(lambda: not pid_alive(int(pid_file.read_text())))
    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("killed")))
    assert (status.state, status.exit_code) == (ProcessState.COMPLETE, ExitCode.UNKNOWN_RESULT)
    assert texts(status)[: len(before.logs)] == texts(before)  # sequence numbers kept
    state = json.loads((second.work_root / "killed" / "scriptstate.json").read_text())
    assert (state["State"], state["ExitCode"], state["RanToCompletion"]) == (2, -46, False)
    again = await second.start_script(start_command("killed", "echo must not run"))
    assert again.exit_code == ExitCode.UNKNOWN_RESULT
    assert "must not run" not in texts(again)


async def test_leftovers_holding_the_output_are_adopted_then_killed(make_service, tmp_path):
    """The entry exited while no agent ran, but a child still holds its output: the new agent
    treats it as a live script's straggler (grace, then kill) instead of forgetting it."""
    pid_file = tmp_path / "pid"
    child_file = tmp_path / "child"
    first = await make_service()
    await first.start_script(
        start_command("strays", f"echo $$ > {pid_file}; sleep 300 & echo $! > {child_file}; wait")
    )
    await wait_until(child_file.exists)
    await first.close()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    await wait_until(lambda: not pid_alive(int(pid_file.read_text())))
    second = await make_service()
    assert [h.ticket for h in second.isolation.snapshot()[0].holders] == [ticket("strays")]
    status = await wait_complete(second, "strays", timeout=10)
    assert status.exit_code == ExitCode.UNKNOWN_RESULT
    assert not pid_alive(int(child_file.read_text()))


async def test_a_cancel_survives_a_restart(make_service, tmp_path):
    pid_file = tmp_path / "pid"
    first = await make_service(interrupt_grace=30)
    await first.start_script(
        start_command("slow-stop", f"echo $$ > {pid_file}; trap '' INT; sleep 300")
    )
    await wait_until(pid_file.exists)
    await first.cancel_script(CancelScriptCommand(ticket=ticket("slow-stop")))
    await first.close()  # the agent goes down mid-ladder
    second = await make_service()
    status = await wait_complete(second, "slow-stop", timeout=10)
    assert status.exit_code not in (0, ExitCode.CANCELED)
    assert not pid_alive(int(pid_file.read_text()))


async def test_pending_ticket_is_not_rerun_after_a_restart(make_service, tmp_path):
    release = tmp_path / "release"
    marker = tmp_path / "ran"
    first = await make_service()
    await first.start_script(
        start_command("holder", f"while [ ! -f {release} ]; do sleep 0.01; done")
    )
    await wait_for_status(first, "holder", lambda s: s.state is ProcessState.RUNNING)
    await first.start_script(start_command("waiting", f"touch {marker}"))
    await first.close()
    release.touch()
    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("waiting")))
    assert status.exit_code == ExitCode.UNKNOWN_RESULT
    assert "never started" in texts(status)[-1]
    retried = await second.start_script(
        start_command("waiting", f"touch {marker}", wait=timedelta(seconds=2))
    )
    assert retried.exit_code == ExitCode.UNKNOWN_RESULT
    await asyncio.sleep(0.2)
    assert not marker.exists()


async def test_quarantine_survives_a_restart(make_service, tmp_path):
    from tentacle_manager.contracts import AbandonScriptCommand

    pid_file = tmp_path / "pid"
    first = await make_service(disable_process_kill=True, allow_unsafe_test_settings=True)
    await first.start_script(
        start_command("stuck", f"echo $$ > {pid_file}; trap '' INT TERM; sleep 300")
    )
    await wait_until(pid_file.exists)
    await first.abandon_script(AbandonScriptCommand(ticket=ticket("stuck")))
    await wait_until(lambda: first.quarantined() != [])
    await first.close()
    second = await make_service(disable_process_kill=True, allow_unsafe_test_settings=True)
    (entry,) = second.quarantined()
    assert int(pid_file.read_text()) in {p.pid for p in entry.processes}
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_a_process_spawned_just_before_a_crash_is_found_by_its_tag(make_service, tmp_path):
    from tentacle_manager.agent.workspace.state import StateStore

    pid_file = tmp_path / "pid"
    first = await make_service()
    await first.start_script(start_command("window", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    await first.close()
    # what a crash between the spawn and the Running save leaves on disk
    store = StateStore(first.work_root / "window")
    state = store.load()
    state.state, state.started, state.process = ProcessState.PENDING, None, None
    store.save(state)
    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("window")))
    assert status.state is ProcessState.RUNNING
    assert [h.ticket for h in second.isolation.snapshot()[0].holders] == [ticket("window")]
    await second.cancel_script(CancelScriptCommand(ticket=ticket("window")))
    await wait_complete(second, "window", timeout=10)
    assert not pid_alive(int(pid_file.read_text()))


async def test_a_script_that_may_have_run_is_not_called_never_started(make_service, tmp_path):
    from tentacle_manager.agent.workspace.state import StateStore

    first = await make_service()
    await first.start_script(start_command("quick", "echo hi", wait=timedelta(seconds=10)))
    await first.close()
    # a crash after the spawn and exit, before the deferred Running save, leaves this behind
    workspace = first.work_root / "quick"
    store = StateStore(workspace)
    state = store.load()
    state.state, state.started, state.process = ProcessState.PENDING, None, None
    state.completed = state.exit_code = state.ran_to_completion = None
    store.save(state)
    (workspace / "Output.stdout.raw").write_bytes(b"")
    second = await make_service()
    status = await second.get_status(ScriptStatusRequest(ticket=ticket("quick")))
    assert status.exit_code == ExitCode.UNKNOWN_RESULT
    assert texts(status)[-1].startswith("The agent restarted while this script was being started")
