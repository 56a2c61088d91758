"""Runs a setup plan step by step, streams its output masked, and rolls back what it made.

Rollback undoes what this run created, not just the instance's registration (Tentacle
Manager's only undo, reference 6.6): the undo command of every step that started, newest
first (the service, the firewall rule, the registration), then every file and folder that
did not exist before the run (the home, the config file, the certificate's secret file).
What could not be undone is reported, never hidden. A cancelled run (the window closed
mid-install) kills the running command's process group and rolls back the same way.

Progress goes to one callback as events, on the event loop, so a view can show a bar and the
streamed log without knowing how the commands run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tentacle_manager.setup.plan import SetupPlan, Step, mask

COMMAND_TIMEOUT = 300.0  # a service that never starts must not hang the wizard for ever


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # rolled back
    CANCELLED = "cancelled"  # rolled back


@dataclass(frozen=True)
class StepStarted:
    index: int  # -1 for an undo step
    step: Step


@dataclass(frozen=True)
class OutputLine:
    text: str  # masked
    error: bool = False  # from stderr, or the installer's own account of a failure


@dataclass(frozen=True)
class StepFinished:
    index: int
    step: Step
    exit_code: int
    seconds: float


@dataclass(frozen=True)
class InstallResult:
    outcome: Outcome
    failed_step: int | None = None
    not_undone: tuple[str, ...] = ()  # what rollback could not remove, in words


Event = StepStarted | OutputLine | StepFinished
Listener = Callable[[Event], None]


class Footprint:
    """What was there before a run, to remove exactly what the run added.

    A folder that existed is listed (its entries then); for a path that did not, only its
    topmost missing ancestor is kept, so a new home under /home/Octopus never means listing
    everyone's home folders.
    """

    def __init__(self, listed: Iterable[Path], watched: Iterable[Path] = ()) -> None:
        self._listed: dict[Path, set[Path]] = {}
        self._missing: set[Path] = set()
        for path in {*map(Path, listed), *map(Path, watched)}:
            top = _topmost_missing(path)
            if top is not None:
                self._missing.add(top)
            elif path in listed and path.is_dir():
                self._listed[path] = _walk(path)

    def added(self) -> list[Path]:
        """Paths there now that were not before, deepest first (so folders empty out)."""
        new = {top for top in self._missing if top.exists()}
        for root, before in self._listed.items():
            new.update(_walk(root) - before)
        return sorted(new, key=lambda path: len(path.parts), reverse=True)


def footprint_of(plan: SetupPlan, machine_home: Path) -> Footprint:
    """What a setup can create: the home and the config file's folder (listed), the machine's
    instance index and secrets (listed), and the applications folder (only if it is new: the
    setup puts nothing in one that exists, and it may hold many deployed applications)."""
    answers = plan.answers
    listed = [answers.home, answers.config_path.parent, machine_home / "Tentacle"]
    return Footprint(listed, watched=[answers.app_dir])


async def install(
    plan: SetupPlan,
    listener: Listener,
    footprint: Footprint,
    environment: dict[str, str] | None = None,
) -> InstallResult:
    """Run every step; on a failure or cancellation, roll back and say what stayed."""
    started: list[Step] = []
    try:
        for index, step in enumerate(plan.steps):
            started.append(step)
            code = await run_step(index, step, plan.secrets, listener, environment)
            if code != 0:
                listener(OutputLine(f"The step '{step.title}' failed with exit code {code}.", True))
                listener(OutputLine(f"The command that failed was: {step.display()}", True))
                not_undone = await _roll_back(started, footprint, plan, listener, environment)
                return InstallResult(Outcome.FAILED, index, not_undone)
    except asyncio.CancelledError:
        listener(OutputLine("Cancelled: undoing what this installation did.", True))
        rollback = _roll_back(started, footprint, plan, listener, environment)
        not_undone = await asyncio.shield(asyncio.ensure_future(rollback))
        return InstallResult(Outcome.CANCELLED, len(started) - 1, not_undone)
    return InstallResult(Outcome.SUCCEEDED)


async def _roll_back(
    started: list[Step],
    footprint: Footprint,
    plan: SetupPlan,
    listener: Listener,
    environment: dict[str, str] | None,
) -> tuple[str, ...]:
    listener(OutputLine("Rolling back: undoing every step that started, newest first."))
    not_undone: list[str] = []
    for position, step in enumerate(reversed(started)):
        for undo in step.undo_steps():
            if await run_step(-1, undo, plan.secrets, listener, environment) == 0:
                continue
            if position > 0:
                not_undone.append(f"{undo.title} failed: {undo.display()}")
            else:  # the step that failed or was stopped may have had nothing to undo yet
                listener(OutputLine(f"{undo.title} did not succeed; the step it undoes was "
                                    "interrupted and may have done nothing.", True))  # fmt: skip
    loop = asyncio.get_running_loop()
    for path, error in await loop.run_in_executor(None, remove_paths, footprint.added()):
        not_undone.append(f"{path} could not be removed: {error}")
    for line in not_undone:
        listener(OutputLine(f"Not undone: {line}", True))
    if not not_undone:
        listener(OutputLine("Rolled back: this machine is as it was before the installation."))
    return tuple(not_undone)


async def run_in_order(
    steps: Iterable[Step], secrets: tuple[str, ...], listener: Listener
) -> int | None:
    """Run steps one after another, stopping at the first that fails; its index, or None.
    For changes that have nothing to roll back (a deletion, a proxy change)."""
    for index, step in enumerate(steps):
        if await run_step(index, step, secrets, listener, None) != 0:
            listener(OutputLine(f"'{step.title}' failed; nothing after it was done.", True))
            return index
    return None


async def run_step(
    index: int,
    step: Step,
    secrets: tuple[str, ...],
    listener: Listener,
    environment: dict[str, str] | None,
) -> int:
    listener(StepStarted(index, step))
    listener(OutputLine(f"> {step.display()}"))
    began = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *step.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            **_own_group(),
        )
    except OSError as error:
        listener(OutputLine(f"Could not start {step.argv[0]}: {error.strerror or error}", True))
        listener(StepFinished(index, step, 127, time.monotonic() - began))
        return 127
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):  # not wait_for: it can lose a cancel
            await asyncio.gather(
                _stream(process.stdout, False, secrets, listener),
                _stream(process.stderr, True, secrets, listener),
                process.wait(),
            )
    except TimeoutError:
        _kill_group(process)
        listener(OutputLine(f"No result after {COMMAND_TIMEOUT:.0f} s: stopped it.", True))
        await process.wait()
    except asyncio.CancelledError:
        _kill_group(process)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.shield(process.wait())
        raise
    code = process.returncode if process.returncode is not None else -1
    listener(StepFinished(index, step, code, time.monotonic() - began))
    return code


async def _stream(
    pipe: asyncio.StreamReader | None, error: bool, secrets: tuple[str, ...], listener: Listener
) -> None:
    assert pipe is not None
    async for raw in pipe:
        listener(OutputLine(mask(raw.decode("utf-8", "replace").rstrip("\r\n"), secrets), error))


def _own_group() -> dict[str, object]:
    """A new process group, so cancelling kills what the command started too."""
    if sys.platform == "win32":
        return {"creationflags": 0x00000200}  # CREATE_NEW_PROCESS_GROUP
    return {"start_new_session": True}


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        if sys.platform == "win32":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)


def remove_paths(paths: list[Path]) -> list[tuple[Path, str]]:
    """Delete files and folders (a link, not what it points to); the ones that resisted, and
    why. Blocking: run it in an executor."""
    failures = []
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            failures.append((path, error.strerror or str(error)))
    return failures


def _walk(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    found = {root}
    for folder, directories, files in os.walk(root):
        base = Path(folder)
        found.update(base / name for name in (*directories, *files))
    return found


def _topmost_missing(path: Path) -> Path | None:
    """The highest ancestor of `path` (or itself) that does not exist; None if it exists."""
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path
