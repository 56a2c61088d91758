"""Prerequisite checks run all at once, each bounded in time, none able to stall the rest.

Tentacle's prerequisite window (reference manager-gui section 7) runs its checks one after
another on a worker thread and stops at the first failure, so one hung `powershell.exe` hides
every other problem and a user fixes them one "CHECK AGAIN" at a time. Here every check runs
concurrently on the caller's event loop, reports when it starts and when it ends, and always
ends: a check that overruns its timeout, or raises, becomes a FAILED result like any other,
and the processes it started are killed with it. Cancelling `run_checks` (the dialog's Cancel)
cancels every check and kills their processes before it returns.

Checks must not block the loop (invariant 6): blocking calls go to an executor, commands go
through `run_command`. A blocking call that hangs in the executor cannot be interrupted; its
check still times out on time and the thread is left to finish on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psutil

OUTPUT_LIMIT = 64 * 1024  # bytes kept per stream: enough to diagnose, small enough to paste
_SETTLE_SECONDS = 2.0  # how long a killed command may take to close its pipes
_log = logging.getLogger(__name__)


class CheckState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class CheckResult:
    """What one check found, in words a user can act on.

    `output` is the transcript of the commands the check ran (filled in by the runner when
    the check leaves it empty), so the dialog's copy button gives support the raw evidence.
    `duration` is set by the runner.
    """

    state: CheckState
    message: str
    remedy: str = ""
    help_url: str = ""
    output: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class CheckContext:
    """What the checks are checking for: the instance's home, where it will listen, and how.

    `listen_address` empty means every interface, which is what Tentacle does when
    Tentacle.Services.ListenIP is unset. `secret_fallback` is the owner-only file the instance
    would use without a keyring (None: the machine's default place, named in the warning).
    `service_manager` forces a kind ("systemd", "windows", "supervisor") as `service
    --manager` does.
    """

    home: Path
    listen_port: int | None
    listen_address: str = ""
    secret_service: str = "TentacleManager/prerequisites"
    secret_fallback: Path | None = None
    service_manager: str | None = None


@dataclass(frozen=True)
class Check:
    """One prerequisite: `key` is stable (for results and tests), `title` is shown to users."""

    key: str
    title: str
    run: Callable[[CheckContext], Awaitable[CheckResult]]
    timeout: float = 20.0


@dataclass(frozen=True)
class CommandOutput:
    """One command a check ran. `returncode` is None when it never started or was killed
    before it exited; `problem` then says why in plain words."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def command_line(self) -> str:
        return subprocess.list2cmdline(list(self.argv))

    @property
    def ending(self) -> str:
        """How it ended, in words: its exit code or the problem."""
        return self.problem or f"exit code {self.returncode}"

    @property
    def transcript(self) -> str:
        """The command as typed, its output, and how it ended, as Tentacle's "More Info" shows."""
        lines = [f"$ {self.command_line}"]
        if self.stdout.strip():
            lines.append(self.stdout.rstrip())
        lines += [f"ERR: {line}" for line in self.stderr.rstrip().splitlines()]
        lines.append(f"[{self.ending}; {self.duration:.2f} s]")
        return "\n".join(lines)


UpdateCallback = Callable[[Check, CheckResult], None]

# The transcript of the check running in the current task; each check's task has its own copy.
_transcript: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "prerequisite_transcript", default=None
)


async def run_checks(
    checks: Sequence[Check], context: CheckContext, on_update: UpdateCallback
) -> dict[str, CheckResult]:
    """Run every check concurrently and return the final results by key, in `checks` order.

    `on_update` is called on the loop's thread with a RUNNING result as each check starts and
    with its final result as it ends, so a view updates in the order things happen. An
    exception from `on_update` is logged and does not stop the checks: a broken view must not
    leave processes behind. Cancelling this coroutine cancels every check, waits until their
    commands are killed, then raises CancelledError.
    """
    keys = [check.key for check in checks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"checks: keys must be unique, got {keys}")
    results: dict[str, CheckResult] = {}

    async def one(check: Check) -> None:
        results[check.key] = await _run_one(check, context, lambda r: _notify(on_update, check, r))

    async with asyncio.TaskGroup() as group:
        for check in checks:
            group.create_task(one(check), name=f"prerequisite {check.key}")
    return {key: results[key] for key in keys}


async def _run_one(
    check: Check, context: CheckContext, notify: Callable[[CheckResult], None]
) -> CheckResult:
    transcript: list[str] = []
    _transcript.set(transcript)
    started = time.monotonic()
    notify(CheckResult(CheckState.RUNNING, f"{check.title}: checking..."))
    deadline = asyncio.timeout(check.timeout)
    try:
        async with deadline:
            result = await check.run(context)
    except Exception as error:  # a check's fault is reported as its result, never raised
        result = _timed_out(check) if deadline.expired() else _broken(check, error)
    final = dataclasses.replace(
        result,
        output=result.output or "\n\n".join(transcript),
        duration=time.monotonic() - started,
    )
    notify(final)
    return final


def _timed_out(check: Check) -> CheckResult:
    return CheckResult(
        CheckState.FAILED,
        f"{check.title}: the check did not finish within {check.timeout:g} s.",
        "Something on this machine is very slow or stuck; the output below shows what was "
        "running. Check again, or investigate that command by hand.",
    )


def _broken(check: Check, error: Exception) -> CheckResult:
    _log.error("Prerequisite check %s raised", check.key, exc_info=error)
    return CheckResult(
        CheckState.FAILED,
        f"{check.title}: the check itself failed: {describe_error(error)}.",
        "This is a fault in the check, not necessarily on this machine. Check again, and "
        "report it with the output below if it persists.",
    )


def _notify(on_update: UpdateCallback, check: Check, result: CheckResult) -> None:
    try:
        on_update(check, result)
    except Exception:
        _log.exception("on_update failed for prerequisite check %s", check.key)


def describe_error(error: BaseException) -> str:
    """An exception in plain words: its message (and the file it concerns), else its kind,
    never a traceback."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


async def run_command(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> CommandOutput:
    """Run a command without blocking the loop, in its own process group, output captured.

    A command that cannot start or overruns `timeout` is returned as a CommandOutput with a
    `problem`, not raised, because for a prerequisite check "bash is missing" is a finding.
    On timeout or cancellation the whole group is killed (a shell's children too). Every
    command's transcript is recorded for the current check's `CheckResult.output`.
    """
    argv = tuple(argv)
    started = time.monotonic()
    stdout, stderr = bytearray(), bytearray()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=None if env is None else dict(env),
            **_own_group(),
        )
    except OSError as error:
        problem = (
            f"{argv[0]} was not found"
            if isinstance(error, FileNotFoundError)
            else f"{argv[0]} could not be started: {describe_error(error)}"
        )
        return _record(CommandOutput(argv, None, problem=problem))
    readers = [
        asyncio.ensure_future(_drain(process.stdout, stdout)),
        asyncio.ensure_future(_drain(process.stderr, stderr)),
    ]
    problem = "stopped with its check (cancelled or timed out); killed"  # until it ends
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(process.wait(), *readers)
        problem = ""
    except TimeoutError:
        problem = f"did not finish within {timeout:g} s; killed"
    finally:
        if problem:
            _kill_group(process)
            await _settle(process, readers)
        # recorded here so that a cancelled check's transcript shows what was stopped
        output = _record(_output(argv, process, stdout, stderr, started, problem))
    return output


def _output(
    argv: tuple[str, ...],
    process: asyncio.subprocess.Process,
    stdout: bytearray,
    stderr: bytearray,
    started: float,
    problem: str,
) -> CommandOutput:
    return CommandOutput(
        argv,
        None if problem else process.returncode,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - started,
        problem,
    )


def _record(output: CommandOutput) -> CommandOutput:
    transcript = _transcript.get()
    if transcript is not None:
        transcript.append(output.transcript)
    return output


def _own_group() -> dict[str, object]:
    """A new session (POSIX) or process group (Windows), so a kill reaches the command's
    children too."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


async def _drain(stream: asyncio.StreamReader | None, sink: bytearray) -> None:
    """Read to the end, keeping the first OUTPUT_LIMIT bytes: a chatty command must not fill
    its pipe and stall, nor fill memory."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        sink.extend(chunk[: max(0, OUTPUT_LIMIT - len(sink))])


def _kill_group(process: asyncio.subprocess.Process) -> None:
    if sys.platform == "win32":
        _kill_tree(process.pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _kill_tree(pid: int) -> None:
    """Windows has no process groups to signal: kill the command and its descendants."""
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.Error):
                process.kill()


async def _settle(process: asyncio.subprocess.Process, readers: list[asyncio.Future[None]]) -> None:
    """Reap the killed command and collect what it printed; give up on pipes held open by a
    process that escaped its group, so a kill always returns."""
    pending = {asyncio.ensure_future(process.wait()), *readers}
    _, still = await asyncio.wait(pending, timeout=_SETTLE_SECONDS)
    for future in still:
        future.cancel()
