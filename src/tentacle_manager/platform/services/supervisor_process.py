"""The user-mode supervisor: one process per service that keeps its agent running.

Run as `python -m tentacle_manager.platform.services.supervisor_process <state-dir>`; the
manager in `supervisor.py` does that, and defines the files of the state directory that both
sides read and write.

The supervisor restarts the agent whenever it exits, with back-off, until it exits too often
within a window (the status becomes FAILED and the supervisor ends). SIGTERM or SIGINT stops
it: the agent alone gets SIGTERM, then SIGKILL after the grace. The agent's process group is
not signalled because the agent's scripts run in sessions of their own and must survive an
agent restart; the agent re-adopts them when it comes back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from pydantic import ValidationError

from tentacle_manager.platform.services.spec import RestartPolicy
from tentacle_manager.platform.services.supervisor import (
    PROCESS_MODULE,
    Phase,
    PidRecord,
    StateDirectory,
    StatusRecord,
    SupervisedCommand,
)

_log = logging.getLogger(PROCESS_MODULE)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


class SignalWaker:
    """SIGTERM, SIGINT and SIGCHLD wake one select(): a stop request and an agent exit are
    noticed at once, without polling, and a signal that arrives early is not lost."""

    def __init__(self) -> None:
        self.stop_requested = False
        self._read, write = os.pipe()
        for fd in (self._read, write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGCHLD, lambda _number, _frame: None)

    def _request_stop(self, _number: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    def wait(self, timeout: float | None = None) -> None:
        ready, _, _ = select.select([self._read], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 4096)

    def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` unless a stop is requested first."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested and (left := deadline - time.monotonic()) > 0:
            self.wait(left)


class RestartBudget:
    """Back-off between restarts, and the crash-loop limit: at most `crash_limit` restarts
    within `crash_window` seconds. A run that lasted a whole window resets the back-off."""

    def __init__(self, policy: RestartPolicy):
        self._policy = policy
        self._exits: deque[float] = deque()
        self._delay = policy.backoff_initial

    @property
    def window(self) -> float:
        return self._policy.crash_window

    @property
    def recent_exits(self) -> int:
        return len(self._exits)

    def allows_restart(self, ran_for: float) -> bool:
        """Count one exit of the agent; False once it has exited too often to restart."""
        now = time.monotonic()
        if ran_for >= self.window:
            self._delay = self._policy.backoff_initial
        self._exits.append(now)
        while self._exits[0] < now - self.window:
            self._exits.popleft()
        return len(self._exits) <= self._policy.crash_limit

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self._policy.backoff_max)
        return delay


class Supervisor:
    def __init__(self, state: StateDirectory, command: SupervisedCommand, waker: SignalWaker):
        self._state = state
        self._command = command
        self._waker = waker

    def run(self) -> int:
        self._state.write_pid(self._state.supervisor_pid, PidRecord.of(psutil.Process()))
        _log.info("Supervisor started for %s", subprocess.list2cmdline(self._command.argv))
        outcome = self._supervise()
        self._state.agent_pid.unlink(missing_ok=True)
        self._state.write_status(outcome.phase, outcome.reason)
        _log.info("Supervisor exiting: %s %s", outcome.phase.value, outcome.reason)
        return 0 if outcome.phase is Phase.STOPPED else 1

    def _supervise(self) -> StatusRecord:
        budget = RestartBudget(self._command.policy)
        while not self._waker.stop_requested:
            try:
                agent = self._start_agent()
            except (OSError, subprocess.SubprocessError) as error:
                _log.error("Could not start the agent: %s", error)
                return StatusRecord(
                    phase=Phase.FAILED, reason=f"could not start the agent: {error}"
                )
            started = time.monotonic()
            returncode = self._wait(agent)
            if returncode is None:
                return self._stop(agent)
            self._state.agent_pid.unlink(missing_ok=True)
            ran_for = time.monotonic() - started
            _log.warning("Agent exited with %s after %.1f s", describe_exit(returncode), ran_for)
            if not budget.allows_restart(ran_for):
                reason = (
                    f"crash loop: the agent exited {budget.recent_exits} times within "
                    f"{budget.window:g} s (last: {describe_exit(returncode)}); gave up"
                )
                _log.error("%s", reason)
                return StatusRecord(phase=Phase.FAILED, reason=reason)
            delay = budget.next_delay()
            self._state.write_status(Phase.BACKING_OFF, f"restarting in {delay:g} s")
            _log.info("Restarting the agent in %g s", delay)
            self._waker.sleep(delay)
        _log.info("Stop requested while the agent was not running")
        return StatusRecord(phase=Phase.STOPPED)

    def _start_agent(self) -> subprocess.Popen[bytes]:
        self._state.write_status(Phase.STARTING)
        agent = self._spawn()
        self._state.write_pid(self._state.agent_pid, PidRecord.of(psutil.Process(agent.pid)))
        self._state.write_status(Phase.RUNNING)
        _log.info("Agent started, pid %d", agent.pid)
        return agent

    def _wait(self, agent: subprocess.Popen[bytes]) -> int | None:
        """The agent's exit code, or None when a stop was requested while it still ran."""
        while not self._waker.stop_requested:
            returncode = agent.poll()
            if returncode is not None:
                return returncode
            self._waker.wait()
        return None

    def _stop(self, agent: subprocess.Popen[bytes]) -> StatusRecord:
        grace = self._command.policy.stop_grace
        self._state.write_status(Phase.STOPPING)
        _log.info("Stop requested: SIGTERM to the agent (pid %d)", agent.pid)
        agent.send_signal(signal.SIGTERM)  # the agent only: its scripts must outlive it
        try:
            returncode = agent.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _log.warning("Agent still running %g s after SIGTERM: SIGKILL", grace)
            agent.kill()
            returncode = agent.wait()
        _log.info("Agent exited with %s", describe_exit(returncode))
        return StatusRecord(phase=Phase.STOPPED)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = self._command
        environment = {**os.environ, **command.environment}
        account: dict[str, Any] = {}
        if command.user is not None:
            entry = pwd.getpwnam(command.user)
            environment |= {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
            account = {
                "user": entry.pw_uid,
                "group": entry.pw_gid,
                "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid),
            }
        with self._state.agent_log.open("ab") as output:
            return subprocess.Popen(
                command.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=command.working_directory or "/",
                env=environment,
                process_group=0,
                close_fds=True,
                **account,
            )


def _configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s [%(process)d] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if len(arguments) != 1:
        print(f"usage: python -m {PROCESS_MODULE} <state-dir>", file=sys.stderr)
        return 2
    state = StateDirectory(Path(arguments[0]))
    try:
        command = state.read_command()
    except (OSError, ValidationError) as error:
        print(f"Cannot read {state.spec}: {error}", file=sys.stderr)
        return 2
    if os.fork() != 0:
        # The launcher returns at once, so whoever started it never keeps a zombie; this process
        # lives on in the session the launcher created, away from any terminal.
        os._exit(0)
    _configure_logging()
    return Supervisor(state, command, SignalWaker()).run()


if __name__ == "__main__":
    sys.exit(main())
