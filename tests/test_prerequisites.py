"""Prerequisite checks: the concurrent runner, its command helper, every standard check run for
real on this machine, and the `check-prerequisites` verb run as a real program.

Commands are real processes; the tests that start sleepers find them with psutil and prove
them gone afterwards, so a regression cannot leave a `sleep 1000` behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import psutil
import pytest
from keyring.backends import fail

from tentacle_manager.agent.process.tree import is_alive
from tentacle_manager.gui.responsiveness import LoopLagProbe
from tentacle_manager.instances.registry import (
    HOME_OVERRIDE_VARIABLE,
    InstanceRegistry,
    create_instance,
)
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE as SECRET_STORE_VARIABLE
from tentacle_manager.instances.tentacle_config import TentacleConfigFile
from tentacle_manager.setup.checks import DetectedProduct, SecurityDetector, standard_checks
from tentacle_manager.setup.prerequisites import (
    Check,
    CheckContext,
    CheckResult,
    CheckState,
    run_checks,
    run_command,
)

FINAL = (CheckState.PASSED, CheckState.WARNING, CheckState.FAILED)
PROGRAM = [sys.executable, "-m", "tentacle_manager.cli.main", "check-prerequisites"]


# --- helpers ---------------------------------------------------------------------------------


def standard(key: str, detector: SecurityDetector | None = None) -> Check:
    return next(c for c in standard_checks(security_detector=detector) if c.key == key)


async def run_one(check: Check, context: CheckContext) -> CheckResult:
    return (await run_checks([check], context, lambda *_: None))[check.key]


def sleepers() -> list[psutil.Process]:
    """This process's descendants that the tests started as `... 1000` sleepers."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "1000" in " ".join(process.cmdline()) and is_alive(process):
                found.append(process)
    return found


async def wait_for_sleepers(count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(sleepers)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} sleepers, found {found}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def listening() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# --- the runner ------------------------------------------------------------------------------


async def test_a_hung_command_times_out_while_the_others_report_and_the_loop_stays_free(
    tmp_path,
):
    async def hung(context: CheckContext) -> CheckResult:
        await run_command(["sleep", "1000"], timeout=1000)
        return CheckResult(CheckState.PASSED, "unreachable")

    async def echo(context: CheckContext) -> CheckResult:
        output = await run_command(["echo", "hello"], timeout=5)
        return CheckResult(CheckState.PASSED, output.stdout.strip())

    async def threaded(context: CheckContext) -> CheckResult:
        await asyncio.to_thread(time.sleep, 0.2)
        return CheckResult(CheckState.WARNING, "slept in a thread")

    async def instant(context: CheckContext) -> CheckResult:
        return CheckResult(CheckState.PASSED, "nothing to wait for")

    checks = [
        Check("hung", "Hung command", hung, timeout=1.0),
        Check("echo", "Echo", echo),
        Check("threaded", "Threaded", threaded),
        Check("instant", "Instant", instant),
    ]
    updates: list[tuple[str, CheckState, float]] = []
    started = time.monotonic()
    probe = LoopLagProbe()
    probe.start()
    spy = asyncio.ensure_future(wait_for_sleepers(1))
    results = await run_checks(
        checks,
        CheckContext(tmp_path, None),
        lambda check, result: updates.append((check.key, result.state, time.monotonic() - started)),
    )
    lag = await probe.stop()
    hung_processes = await spy

    assert list(results) == ["hung", "echo", "threaded", "instant"]
    assert [key for key, state, _ in updates if state is CheckState.RUNNING] == list(results)
    finals = [(key, at) for key, state, at in updates if state in FINAL]
    assert [key for key, _ in finals][-1] == "hung"
    assert all(at < 0.8 for key, at in finals if key != "hung"), finals
    assert results["echo"].message == "hello" and "$ echo hello" in results["echo"].output
    assert results["threaded"].state is CheckState.WARNING
    timed_out = results["hung"]
    assert timed_out.state is CheckState.FAILED
    assert "did not finish within 1 s" in timed_out.message and timed_out.remedy
    assert "$ sleep 1000" in timed_out.output and "killed" in timed_out.output
    assert 1.0 <= timed_out.duration < 2.5
    assert hung_processes and not any(is_alive(p) for p in hung_processes)
    assert lag.worst <= 0.05, lag


async def test_cancelling_run_checks_kills_every_running_command_and_its_children(tmp_path):
    async def family(context: CheckContext) -> CheckResult:
        await run_command(["bash", "-c", "sleep 1000 & sleep 1000 & wait"], timeout=1000)
        return CheckResult(CheckState.PASSED, "unreachable")

    async def sleeper(context: CheckContext) -> CheckResult:
        await run_command(["sleep", "1000"], timeout=1000)
        return CheckResult(CheckState.PASSED, "unreachable")

    updates: list[CheckState] = []
    task = asyncio.ensure_future(
        run_checks(
            [Check("family", "Family", family), Check("sleeper", "Sleeper", sleeper)],
            CheckContext(tmp_path, None),
            lambda check, result: updates.append(result.state),
        )
    )
    running = await wait_for_sleepers(4)  # bash, its two sleeps, and the lone sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [p for p in running if is_alive(p)]
    assert updates == [CheckState.RUNNING, CheckState.RUNNING]


async def test_an_exception_in_a_check_or_in_on_update_is_a_result_not_a_crash(tmp_path):
    async def broken(context: CheckContext) -> CheckResult:
        raise RuntimeError("the frobnicator is missing")

    async def unreadable(context: CheckContext) -> CheckResult:
        (tmp_path / "absent").read_text()
        return CheckResult(CheckState.PASSED, "unreachable")

    async def own_timeout(context: CheckContext) -> CheckResult:
        raise TimeoutError("the server did not answer")

    async def fine(context: CheckContext) -> CheckResult:
        return CheckResult(CheckState.PASSED, "fine")

    def on_update(check: Check, result: CheckResult) -> None:
        if check.key == "fine":
            raise ValueError("a broken view")

    results = await run_checks(
        [
            Check("broken", "Broken", broken),
            Check("io", "Unreadable", unreadable),
            Check("own-timeout", "Own timeout", own_timeout),
            Check("fine", "Fine", fine),
        ],
        CheckContext(tmp_path, None),
        on_update,
    )
    assert results["broken"].state is CheckState.FAILED
    broken_message = results["broken"].message
    assert broken_message == "Broken: the check itself failed: the frobnicator is missing."
    assert "Traceback" not in results["broken"].message and results["broken"].remedy
    assert f"No such file or directory: {tmp_path / 'absent'}" in results["io"].message
    assert results["own-timeout"].message.endswith("failed: the server did not answer.")
    assert results["fine"].state is CheckState.PASSED


async def test_check_keys_must_be_unique(tmp_path):
    check = standard("rights")
    with pytest.raises(ValueError, match="unique"):
        await run_checks([check, check], CheckContext(tmp_path, None), lambda *_: None)


async def test_run_command_captures_output_and_reports_what_went_wrong():
    done, missing, slow = await asyncio.gather(
        run_command(["bash", "-c", "echo out; echo err >&2; exit 3"], timeout=5),
        run_command(["no-such-program-for-prerequisites"], timeout=5),
        run_command(["sleep", "1000"], timeout=0.2),
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert "ERR: err" in done.transcript and "[exit code 3;" in done.transcript
    assert missing.returncode is None and "was not found" in missing.problem
    assert slow.returncode is None and "did not finish within 0.2 s; killed" in slow.problem
    assert not sleepers()


# --- every standard check, for real ----------------------------------------------------------


async def test_every_standard_check_finishes_here_with_a_sensible_state(tmp_path, capsys):
    context = CheckContext(tmp_path / "home", free_port())
    started = time.monotonic()
    results = await run_checks(standard_checks(), context, lambda *_: None)
    assert time.monotonic() - started < 10
    assert all(result.state in FINAL and result.message for result in results.values())
    with capsys.disabled():  # the figures this machine gives, for the record
        for key, result in results.items():
            print(f"\n  {key:26} {result.state:8} {result.duration:6.3f} s  {result.message}")

    expected_rights = CheckState.PASSED if os.geteuid() == 0 else CheckState.WARNING
    assert results["rights"].state is expected_rights
    assert results["shell-bash"].state is CheckState.PASSED
    assert results["shell-bash"].message.startswith("bash ")
    if shutil.which("pwsh") is None:
        profile = results["shell-powershell-profile"]
        assert (profile.state, profile.message[:15]) == (CheckState.PASSED, "Not applicable:")
    manager = results["service-manager"]
    if Path("/run/systemd/system").is_dir():
        assert manager.state is CheckState.PASSED and "systemd" in manager.message
    else:
        assert manager.state is CheckState.WARNING and "user-mode supervisor" in manager.message
    assert results["listen-port"].state is CheckState.PASSED
    assert results["home-folder"].state is CheckState.PASSED
    assert "MB free" in results["home-folder"].message
    if isinstance(keyring.get_keyring(), fail.Keyring) and not os.environ.get(
        SECRET_STORE_VARIABLE
    ):
        assert results["secret-store"].state is CheckState.WARNING
        assert "owner-only file" in results["secret-store"].message
    assert results["clock"].state is not CheckState.FAILED
    assert results["security-products"].state in FINAL


async def test_port_check_names_the_holder_and_passes_on_a_free_port(tmp_path):
    check = standard("listen-port")
    with listening() as port:
        taken = await run_one(check, CheckContext(tmp_path, port))
        on_loopback = await run_one(check, CheckContext(tmp_path, port, "127.0.0.1"))
    free = await run_one(check, CheckContext(tmp_path, free_port()))
    polling = await run_one(check, CheckContext(tmp_path, None))
    foreign = await run_one(check, CheckContext(tmp_path, free_port(), "192.0.2.1"))

    for result in taken, on_loopback:
        assert result.state is CheckState.FAILED
        assert f"{psutil.Process().name()} (pid {os.getpid()})" in result.message
        assert "already in use" in result.message and "--port" in result.remedy
    assert "every address" in taken.message and "127.0.0.1" in on_loopback.message
    assert free.state is CheckState.PASSED and "is free" in free.message
    assert polling.state is CheckState.PASSED and "Not applicable" in polling.message
    assert foreign.state is CheckState.FAILED and "not one of this machine's" in foreign.message


async def test_home_check_fails_when_a_file_is_in_the_way(tmp_path):
    (tmp_path / "file").write_text("")
    check = standard("home-folder")
    below = await run_one(check, CheckContext(tmp_path / "file" / "home", None))
    instead = await run_one(check, CheckContext(tmp_path / "file", None))
    for result in below, instead:
        assert result.state is CheckState.FAILED
        assert f"{tmp_path / 'file'} is a file, not a folder" in result.message


async def test_home_check_fails_on_a_folder_even_root_cannot_write(tmp_path):
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if subprocess.run(["chattr", "+i", str(frozen)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        result = await run_one(standard("home-folder"), CheckContext(frozen / "home", None))
    finally:
        subprocess.run(["chattr", "-i", str(frozen)], check=True)
    assert result.state is CheckState.FAILED
    assert f"cannot write in {frozen} (Operation not permitted)" in result.message


async def test_home_check_judges_free_space_by_the_agents_rule(tmp_path):
    check = standard("home-folder")
    with tmpfs(tmp_path / "small", "100m") as small, tmpfs(tmp_path / "medium", "1g") as medium:
        tight = await run_one(check, CheckContext(small, None))
        snug = await run_one(check, CheckContext(medium / "home", None))
    assert tight.state is CheckState.FAILED
    assert "has only 100 MB free" in tight.message and "below 551 MB" in tight.message
    assert snug.state is CheckState.WARNING and "1,024 MB free" in snug.message
    assert f"(it will be created in {medium})" in snug.message


async def test_shell_check_fails_without_bash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = await run_one(standard("shell-bash"), CheckContext(tmp_path, None))
    assert result.state is CheckState.FAILED and "bash was not found" in result.message
    assert result.help_url


def fake_pwsh(folder: Path, profile: Path, *, slow_profile: bool, fail: bool = False) -> None:
    """A pwsh that prints the profile paths and, unless -NoProfile, "loads" its profile."""
    folder.mkdir()
    loading = "sleep 1.1" if slow_profile else ":"
    script = folder / "pwsh"
    script.write_text(
        "#!/bin/bash\n"
        f'case " $* " in *" -NoProfile "*) ;; *) {loading}; {"exit 1" if fail else ":"} ;; esac\n'
        f"echo /nonexistent/profile.ps1; echo {profile}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="the fake pwsh is a bash script")
async def test_profile_check_measures_a_slow_profile(tmp_path, monkeypatch):
    profile = tmp_path / "profile.ps1"
    profile.write_text("Start-Sleep 1")
    for name, slow, failing in ("slow", True, False), ("fast", False, False), ("bad", False, True):
        fake_pwsh(tmp_path / name, profile, slow_profile=slow, fail=failing)
    check = standard("shell-powershell-profile")
    results = {}
    for name in "slow", "fast", "bad":
        monkeypatch.setenv("PATH", f"{tmp_path / name}{os.pathsep}{os.environ['PATH']}")
        results[name] = await run_one(check, CheckContext(tmp_path, None))

    slow = results["slow"]
    assert slow.state is CheckState.WARNING and "The PowerShell profile adds 1." in slow.message
    assert str(profile) in slow.remedy and "/nonexistent" not in slow.remedy
    assert "ExecuteWithoutProfile" in slow.remedy and slow.help_url
    assert slow.output.count("$ ") == 2 and "-NoProfile" in slow.output
    assert results["fast"].state is CheckState.PASSED
    assert "with -NoProfile" in results["fast"].message
    assert results["bad"].state is CheckState.WARNING
    assert "Could not time" in results["bad"].message


async def test_secret_store_check_follows_the_override(tmp_path, monkeypatch):
    check = standard("secret-store")
    context = CheckContext(tmp_path, None, secret_fallback=tmp_path / "secrets.json")
    monkeypatch.setenv(SECRET_STORE_VARIABLE, "file")
    chosen = await run_one(check, context)
    monkeypatch.setenv(SECRET_STORE_VARIABLE, "bogus")
    broken = await run_one(check, context)
    assert chosen.state is CheckState.PASSED
    assert f"owner-only file ({tmp_path / 'secrets.json'})" in chosen.message
    assert "kind: file" in chosen.output
    assert broken.state is CheckState.FAILED and SECRET_STORE_VARIABLE in broken.message


async def test_service_manager_check_names_the_forced_manager(tmp_path):
    check = standard("service-manager")
    impossible = "systemd" if sys.platform == "win32" else "windows"
    refused = await run_one(check, CheckContext(tmp_path, None, service_manager=impossible))
    assert refused.state is CheckState.FAILED and refused.remedy
    if sys.platform != "win32":
        forced = await run_one(check, CheckContext(tmp_path, None, service_manager="supervisor"))
        assert forced.state is CheckState.PASSED
        assert "the built-in user-mode supervisor" in forced.message


async def test_clock_check_notices_a_clock_behind_this_machines_own_files(tmp_path):
    written = tmp_path / "written-later"
    written.write_text("")
    later = time.time() + 3600
    os.utime(written, (later, later))
    result = await run_one(standard("clock"), CheckContext(tmp_path, None))
    assert result.state is CheckState.WARNING
    assert "behind a file this machine wrote" in result.message and str(written) in result.message


async def test_security_check_uses_the_advisors_detection_and_takes_another_detector(tmp_path):
    clamd = tmp_path / "clamd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", clamd)
    scanner = subprocess.Popen([str(clamd), "30"])
    try:
        found = await run_one(standard("security-products"), CheckContext(tmp_path, None))
    finally:
        scanner.kill()
        scanner.wait()

    async def advisor() -> list[DetectedProduct]:
        return [DetectedProduct("Acme Endpoint", "acmed (pid 7)")]

    async def nothing() -> list[DetectedProduct]:
        return []

    wired = await run_one(standard("security-products", advisor), CheckContext(tmp_path, None))
    clean = await run_one(standard("security-products", nothing), CheckContext(tmp_path, None))
    assert found.state is CheckState.WARNING
    assert "ClamAV" in found.message and f"process pid {scanner.pid} clamd" in found.message
    assert found.help_url
    assert wired.state is CheckState.WARNING and "Acme Endpoint: acmed (pid 7)" in wired.message
    assert "anti-virus advisor" in wired.remedy and str(tmp_path / "Work") in wired.remedy
    assert clean.state is CheckState.PASSED


# --- the verb --------------------------------------------------------------------------------


def test_check_prerequisites_verb_in_text_and_json(tmp_path):
    machine = tmp_path / "machine"
    home = tmp_path / "instance-home"
    created = create_instance(
        InstanceRegistry(machine), instance="Checked", config=tmp_path / "Checked.config", home=home
    )
    instance_port = free_port()
    with TentacleConfigFile(created.configuration_file_path).edit() as config:
        config.set_port(instance_port)
    env = {**os.environ, HOME_OVERRIDE_VARIABLE: str(machine), SECRET_STORE_VARIABLE: "file"}
    with listening() as taken:
        commands = {
            "text": ["--home", str(tmp_path / "home"), "--port", str(free_port())],
            "json": ["--home", str(tmp_path), "--port", str(taken), "--format", "json"],
            "instance": ["--instance", "Checked"],
            "nothing": [],
            "bad port": ["--home", str(tmp_path), "--port", "70000"],
        }
        running = {
            name: subprocess.Popen(
                [*PROGRAM, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, args in commands.items()
        }
        done = {name: (p.wait(60), *p.communicate()) for name, p in running.items()}

    code, out, err = done["text"]
    assert code == 0, out + err
    assert "[ ok ] Listen port: Port " in out and "[FAIL]" not in out
    assert out.splitlines()[-1].endswith("0 failed")
    assert len([line for line in out.splitlines() if line.startswith("[")]) == len(
        standard_checks()
    )

    code, out, err = done["json"]
    document = json.loads(out)
    assert code == 1, err
    assert [entry["Key"] for entry in document["Checks"]] == [c.key for c in standard_checks()]
    port_entry = next(entry for entry in document["Checks"] if entry["Key"] == "listen-port")
    assert port_entry["State"] == "failed" and f"pid {os.getpid()}" in port_entry["Message"]
    assert document["Failed"] == 1

    code, out, err = done["instance"]
    assert code == 0, out + err
    assert f"Port {instance_port} on every address is free" in out
    assert f"The home folder {home} is writable" in out
    assert "Secrets will be kept in an owner-only file" in out

    for name, option in ("nothing", "--instance"), ("bad port", "--port"):
        code, out, err = done[name]
        assert code == 1 and option in err and len(err.strip().splitlines()) == 1, err
