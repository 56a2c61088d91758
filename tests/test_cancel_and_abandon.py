"""Cancel reaches the whole process tree; abandon frees the mutex even when nothing dies."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

import pytest

from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings, SettingsError
from tentacle_manager.agent.scripts.settings import DISABLE_KILL_VARIABLE
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CompleteScriptCommand,
    ExitCode,
    ProcessOutputSource,
    ProcessState,
    ScriptPhase,
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

STUBBORN = "trap '' INT TERM; while :; do sleep 0.05; done"


def debug_lines(status) -> list[str]:
    return [r.text for r in status.logs if r.source is ProcessOutputSource.DEBUG]


async def test_grandchild_ignoring_sigint_and_sigterm_is_gone_after_the_ladder(service, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    body = f'bash -c "{STUBBORN}" & echo $! > {pid_file}; wait'
    await service.start_script(start_command("tree", body))
    await wait_until(pid_file.exists)
    grandchild = int(pid_file.read_text())
    await service.cancel_script(CancelScriptCommand(ticket=ticket("tree")))
    status = await wait_complete(service, "tree", timeout=15)
    assert not pid_alive(grandchild)
    lines = debug_lines(status)
    assert any(line.startswith("Sent SIGINT to ") for line in lines)
    assert any(line.startswith("Sent SIGTERM to ") for line in lines)
    assert any(line.startswith("Sent SIGKILL to ") for line in lines)
    assert any("still alive" in line for line in lines)


async def test_double_forked_daemon_that_left_the_session_is_killed(service, tmp_path):
    pid_file = tmp_path / "daemon.pid"
    # setsid + a subshell that exits at once: the daemon leaves the script's session and is
    # re-parented away from the script; only the tracking tag still ties it to the script.
    body = (
        f"( setsid bash -c 'echo $$ > {pid_file}; exec sleep 300' "
        "< /dev/null > /dev/null 2>&1 & ); sleep 300"
    )
    await service.start_script(start_command("daemon", body))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    daemon = int(pid_file.read_text())
    assert os.getsid(daemon) == daemon  # really left the session
    await service.cancel_script(CancelScriptCommand(ticket=ticket("daemon")))
    await wait_complete(service, "daemon", timeout=15)
    await wait_until(lambda: not pid_alive(daemon), timeout=5)


async def test_cooperative_script_stops_on_the_first_rung(service, tmp_path):
    ready = tmp_path / "ready"
    await service.start_script(
        start_command(
            "coop", f"trap 'echo bye; exit 130' INT; touch {ready}; while :; do sleep 0.01; done"
        )
    )
    await wait_until(ready.exists)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await service.cancel_script(CancelScriptCommand(ticket=ticket("coop")))
    status = await wait_complete(service, "coop")
    assert loop.time() - asked < 1.0
    assert status.exit_code == 130
    assert "bye" in texts(status)
    assert not any("SIGTERM" in line for line in debug_lines(status))


async def test_grandchild_holding_the_output_does_not_keep_the_script_running(service, tmp_path):
    pid_file = tmp_path / "holder.pid"
    body = f"sleep 300 & echo $! > {pid_file}; echo done"
    loop = asyncio.get_running_loop()
    began = loop.time()
    await service.start_script(start_command("holder", body))
    status = await wait_complete(service, "holder", timeout=10)
    # output_holder_grace is 1 s in the test settings; allow for a slow shared machine
    assert loop.time() - began < 4.0
    assert status.exit_code == 0
    assert "done" in texts(status)
    assert not pid_alive(int(pid_file.read_text()))
    assert any("still hold its output" in line for line in debug_lines(status))


async def test_background_process_with_its_own_output_is_left_running(service, tmp_path):
    """Deploy scripts start services with `nohup app > app.log &`; those must survive."""
    pid_file = tmp_path / "app.pid"
    body = f"nohup sleep 300 > {tmp_path}/app.log 2>&1 & echo $! > {pid_file}; echo started"
    status = await service.start_script(start_command("svc", body, wait=timedelta(seconds=10)))
    assert status.exit_code == 0
    app = int(pid_file.read_text())
    assert pid_alive(app)
    os.kill(app, signal.SIGKILL)


async def unkillable_service(make_service):
    return await make_service(disable_process_kill=True, allow_unsafe_test_settings=True)


async def test_abandon_frees_the_mutex_while_the_process_lives_on(make_service, tmp_path):
    service = await unkillable_service(make_service)
    pid_file = tmp_path / "stuck.pid"
    await service.start_script(
        start_command("stuck", f"echo $$ > {pid_file}; {STUBBORN}", task="A")
    )
    await wait_until(pid_file.exists)
    stuck = int(pid_file.read_text())
    await service.start_script(start_command("second", "echo second", task="B"))
    await service.cancel_script(CancelScriptCommand(ticket=ticket("stuck")))
    await asyncio.sleep(0.3)
    second = await service.get_status(ScriptStatusRequest(ticket=ticket("second")))
    assert second.state is ProcessState.PENDING
    abandoned = await service.abandon_script(AbandonScriptCommand(ticket=ticket("stuck")))
    assert (abandoned.state, abandoned.exit_code) == (ProcessState.COMPLETE, ExitCode.ABANDONED)
    honest = (
        "Tentacle has abandoned this script. The underlying script process may still be "
        "running on this host."
    )
    assert texts(abandoned).count(honest) == 1
    second = await wait_complete(service, "second", timeout=10)
    assert second.exit_code == 0
    assert pid_alive(stuck)
    # the survivor is quarantined, visible, and its workspace kept
    await wait_until(lambda: service.quarantined() != [], timeout=5)
    (entry,) = service.quarantined()
    assert entry.ticket == ticket("stuck")
    assert stuck in {p.pid for p in entry.processes}
    await service.complete_script(CompleteScriptCommand(ticket=ticket("stuck")))
    assert (service.work_root / "stuck").is_dir()
    # once it dies, the quarantine clears itself and the workspace goes
    os.kill(stuck, signal.SIGKILL)
    await wait_until(lambda: not pid_alive(stuck))
    await asyncio.sleep(0.1)
    service.retry_quarantine()
    assert service.quarantined() == []
    assert not (service.work_root / "stuck").exists()


async def test_abandon_without_cancel_kills_a_killable_script(service, tmp_path):
    pid_file = tmp_path / "pid"
    await service.start_script(start_command("kill-me", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    status = await service.abandon_script(AbandonScriptCommand(ticket=ticket("kill-me")))
    assert status.exit_code == ExitCode.ABANDONED
    await wait_until(lambda: not pid_alive(int(pid_file.read_text())), timeout=5)
    await asyncio.sleep(1.5)  # kill_grace: the sweep finds nothing left to quarantine
    assert service.quarantined() == []


async def test_abandon_of_finished_unknown_and_queued_tickets(service, tmp_path):
    await service.start_script(start_command("fin", "exit 7", wait=timedelta(seconds=5)))
    done = await service.abandon_script(AbandonScriptCommand(ticket=ticket("fin")))
    assert (done.state, done.exit_code) == (ProcessState.COMPLETE, 7)
    unknown = await service.abandon_script(AbandonScriptCommand(ticket=ticket("ghost")))
    assert unknown.exit_code == ExitCode.UNKNOWN_SCRIPT
    release = tmp_path / "release"
    never = tmp_path / "never"
    await service.start_script(
        start_command("holder", f"while [ ! -f {release} ]; do sleep 0.01; done")
    )
    await wait_for_status(service, "holder", lambda s: s.state is ProcessState.RUNNING)
    await service.start_script(start_command("queued", f"touch {never}"))
    queued = await service.abandon_script(AbandonScriptCommand(ticket=ticket("queued")))
    assert queued.exit_code == ExitCode.CANCELED
    release.touch()
    await wait_complete(service, "holder")
    assert not never.exists()


async def test_cancel_after_abandon_returns_the_abandoned_result(make_service, tmp_path):
    service = await unkillable_service(make_service)
    pid_file = tmp_path / "pid"
    await service.start_script(start_command("s", f"echo $$ > {pid_file}; {STUBBORN}"))
    await wait_until(pid_file.exists)
    await service.abandon_script(AbandonScriptCommand(ticket=ticket("s")))
    after = await service.cancel_script(CancelScriptCommand(ticket=ticket("s")))
    assert after.exit_code == ExitCode.ABANDONED
    again = await service.start_script(start_command("s", "echo again"))
    assert again.exit_code == ExitCode.ABANDONED
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_cancel_that_cannot_kill_keeps_the_mutex_until_abandoned(make_service, tmp_path):
    service = await unkillable_service(make_service)
    pid_file = tmp_path / "pid"
    await service.start_script(start_command("s", f"echo $$ > {pid_file}; {STUBBORN}"))
    await wait_until(pid_file.exists)
    await service.cancel_script(CancelScriptCommand(ticket=ticket("s")))
    await asyncio.sleep(0.5)
    (summary,) = [s for s in service.list_scripts() if s.ticket == ticket("s")]
    assert summary.phase is ScriptPhase.CANCELLING
    assert service.isolation.snapshot()[0].holders[0].ticket == ticket("s")
    await service.abandon_script(AbandonScriptCommand(ticket=ticket("s")))
    assert service.isolation.snapshot() == []
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_complete_on_a_running_script_stops_it_instead_of_orphaning_it(service, tmp_path):
    pid_file = tmp_path / "pid"
    await service.start_script(start_command("r", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    await service.complete_script(CompleteScriptCommand(ticket=ticket("r")))
    assert not pid_alive(int(pid_file.read_text()))
    assert not (service.work_root / "r").exists()


def test_kill_switch_is_refused_without_the_test_only_flag(tmp_path):
    with pytest.raises(SettingsError) as error:
        ScriptServiceSettings.create(disable_process_kill=True)
    assert "disable_process_kill" in str(error.value)
    with pytest.raises(SettingsError):
        ScriptServiceSettings.from_environment({DISABLE_KILL_VARIABLE: "1"})
    settings = ScriptServiceSettings.from_environment(
        {DISABLE_KILL_VARIABLE: "1", "TENTACLE_UNSAFE_TEST_MODE": "1"}
    )
    assert settings.disable_process_kill
    assert ScriptService(tmp_path, settings)  # allowed only with both


@pytest.mark.parametrize(
    ("field", "value"),
    [("interrupt_grace", -1), ("quarantine_retry_interval", 0), ("minimum_free_disk_bytes", -5)],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(SettingsError) as error:
        ScriptServiceSettings.create(**{field: value})
    assert field in error.value.problems


async def test_abandon_after_the_script_exited_keeps_its_real_exit_code(make_service, tmp_path):
    service = await make_service(output_holder_grace=30)
    pid_file = tmp_path / "straggler.pid"
    await service.start_script(start_command("s", f"sleep 300 & echo $! > {pid_file}; exit 5"))
    await wait_for_status(
        service, "s", lambda st: any("still hold its output" in t for t in texts(st))
    )
    status = await service.abandon_script(AbandonScriptCommand(ticket=ticket("s")))
    assert (status.state, status.exit_code) == (ProcessState.COMPLETE, 5)
    await wait_until(lambda: not pid_alive(int(pid_file.read_text())), timeout=5)


def immutable(path, on: bool) -> None:
    import subprocess

    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


async def test_complete_after_abandon_keeps_an_undeletable_workspace_with_a_warning(
    service, tmp_path, caplog
):
    from tentacle_manager.agent.workspace.workspace import WorkspaceDeleteError

    await service.start_script(start_command("normal", "exit 0", wait=timedelta(seconds=5)))
    locked = service.work_root / "normal" / "locked"
    locked.write_text("held")
    immutable(locked, True)
    try:
        with pytest.raises(WorkspaceDeleteError):
            await service.complete_script(CompleteScriptCommand(ticket=ticket("normal")))
    finally:
        immutable(locked, False)

    pid_file = tmp_path / "pid"
    await service.start_script(start_command("gone", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    assert (
        await service.abandon_script(AbandonScriptCommand(ticket=ticket("gone")))
    ).exit_code == ExitCode.ABANDONED
    await asyncio.sleep(1.5)  # the sweep after abandon finds nothing to quarantine
    locked = service.work_root / "gone" / "locked"
    locked.write_text("held")
    immutable(locked, True)
    try:
        await service.complete_script(CompleteScriptCommand(ticket=ticket("gone")))
        assert (service.work_root / "gone").is_dir()
        assert "Could not delete abandoned workspace" in caplog.text
    finally:
        immutable(locked, False)


async def test_many_abandons_do_not_leak_threads(make_service, tmp_path):
    import threading

    service = await unkillable_service(make_service)
    before = threading.active_count()
    for index in range(20):
        name = f"stuck{index}"
        pid_file = tmp_path / f"{name}.pid"
        await service.start_script(
            start_command(name, f"echo $$ > {pid_file}; {STUBBORN}", mutex=name)
        )
        await wait_until(pid_file.exists)
        status = await service.abandon_script(AbandonScriptCommand(ticket=ticket(name)))
        assert status.exit_code == ExitCode.ABANDONED
    await wait_until(lambda: len(service.quarantined()) == 20, timeout=10)
    assert threading.active_count() - before <= 8  # the default executor's few workers at most
    assert service.isolation.snapshot() == []


async def test_an_unexpected_launch_failure_frees_the_mutex(service):
    # a lone surrogate cannot be encoded into argv: the launch fails without an OSError
    failed = await service.start_script(
        start_command("bad-arg", "true", arguments=["\ud800"], wait=timedelta(seconds=5))
    )
    assert failed.exit_code == ExitCode.SHELL_INVOCATION_ERROR
    assert service.isolation.snapshot() == []
    after = await service.start_script(start_command("next", "true", wait=timedelta(seconds=5)))
    assert after.exit_code == 0


async def test_output_handed_to_a_new_writer_during_the_grace_cannot_keep_it_running(
    service, tmp_path
):
    spammer = tmp_path / "spammer.pid"
    body = (
        f"( sleep 0.3; setsid bash -c 'echo $$ > {spammer}; while :; do echo spam; done' & ) & "
        "exit 0"
    )
    await service.start_script(start_command("runaway", body))
    status = await wait_complete(service, "runaway", timeout=20)
    assert status.exit_code == 0
    await wait_until(lambda: spammer.exists() and not pid_alive(int(spammer.read_text())))


async def test_two_completes_of_a_running_script(service, tmp_path):
    pid_file = tmp_path / "pid"
    await service.start_script(start_command("twice", f"echo $$ > {pid_file}; sleep 300"))
    await wait_until(pid_file.exists)
    command = CompleteScriptCommand(ticket=ticket("twice"))
    await asyncio.gather(service.complete_script(command), service.complete_script(command))
    assert not (service.work_root / "twice").exists()
