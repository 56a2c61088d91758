"""An interpreter that starts but never reaches the script's first line ends at -47."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tentacle_manager.agent.process.shell import Bash
from tentacle_manager.agent.process.startup_detection import MARKER, STARTED_FILE
from tentacle_manager.agent.scripts import ScriptService, ScriptServiceSettings, SettingsError
from tentacle_manager.contracts import ExitCode, ProcessState
from tests.support import fast_settings, kill_strays, start_command, texts, wait_complete


def hanging_bash(tmp_path, delay: float):
    """A "bash" that sits for `delay` seconds before it runs anything, like a hooked shell."""
    wrapper = tmp_path / "slow-bash"
    wrapper.write_text(f'#!/bin/bash\nsleep {delay}\nexec bash "$@"\n')
    wrapper.chmod(0o755)
    return Bash(executable=str(wrapper))


async def test_never_started_gives_minus_47_and_frees_the_mutex(tmp_path):
    marker = tmp_path / "body-ran"
    service = ScriptService(
        tmp_path / "home", fast_settings(startup_timeout=1.0), shell=hanging_bash(tmp_path, 300)
    )
    try:
        async with service:
            await service.start_script(start_command("hung", f"{MARKER}\ntouch {marker}"))
            status = await wait_complete(service, "hung", timeout=10)
            assert status.exit_code == ExitCode.POWERSHELL_NEVER_STARTED
            assert any(
                text.endswith("process did not start within 1 seconds. Script execution aborted.")
                for text in texts(status)
            )
            assert service.isolation.snapshot() == []
            assert not marker.exists()
    finally:
        kill_strays(tmp_path)


async def test_a_late_start_exits_by_itself_without_running_the_body(tmp_path):
    marker = tmp_path / "body-ran"
    settings = fast_settings(
        startup_timeout=0.5, disable_process_kill=True, allow_unsafe_test_settings=True
    )
    service = ScriptService(tmp_path / "home", settings, shell=hanging_bash(tmp_path, 1.5))
    try:
        async with service:
            await service.start_script(start_command("late", f"{MARKER}\ntouch {marker}"))
            status = await wait_complete(service, "late", timeout=10)
            assert status.exit_code == ExitCode.POWERSHELL_NEVER_STARTED
            await asyncio.sleep(2.5)  # the shell wakes up, finds the start taken, and leaves
            assert not marker.exists()
    finally:
        kill_strays(tmp_path)


async def test_a_guarded_script_that_starts_in_time_runs_normally(make_service):
    service = await make_service(startup_timeout=5)
    status = await service.start_script(
        start_command("ok", f"{MARKER}\necho hi", wait=timedelta(seconds=10))
    )
    assert (status.state, status.exit_code) == (ProcessState.COMPLETE, 0)
    assert "hi" in texts(status)
    assert (service.work_root / "ok" / STARTED_FILE).exists()


def test_startup_timeout_from_the_environment():
    settings = ScriptServiceSettings.from_environment(
        {"TentaclePowerShellStartupTimeout": "00:05:00"}
    )
    assert settings.startup_timeout == 300
    with pytest.raises(SettingsError) as error:
        ScriptServiceSettings.from_environment({"TentaclePowerShellStartupTimeout": "5 minutes"})
    assert "TentaclePowerShellStartupTimeout" in error.value.problems
