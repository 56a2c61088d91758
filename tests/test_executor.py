"""The script executor against a real script service: output once and in order, cancel,
cancel -> abandon, CompleteScript on every path, and an agent that stops answering."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import pytest

from tentacle_manager.agent.process.tree import processes_of_home
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.agent.workspace.workspace import Workspace
from tentacle_manager.client.backoff import Backoff, BackoffSchedule
from tentacle_manager.client.executor import (
    ExecutorSettings,
    ExecutorSettingsError,
    ScriptExecutor,
    ScriptOutcome,
    ScriptResult,
)
from tentacle_manager.client.in_process import InProcessAgent
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.contracts import (
    AbandonScriptCommand,
    CancelScriptCommand,
    CapabilitiesResponse,
    Capability,
    CompleteScriptCommand,
    ExitCode,
    ProcessOutput,
    ProcessOutputSource,
    ProcessState,
    ScriptStatusRequest,
    ScriptStatusResponse,
    StartScriptCommand,
    ticket,
)
from tests.support import pid_alive, start_command, wait_until

T = TypeVar("T")

STUBBORN = "trap '' INT TERM; while :; do sleep 0.05; done"
COOPERATIVE = "trap 'echo bye; exit 130' INT; touch {ready}; while :; do sleep 0.01; done"


@dataclass
class Fault:
    """An error a verb raises, before the agent sees the call or after it handled it (an
    answer lost on the way back)."""

    error: Exception
    reaches_agent: bool = False


class RecordingAgent(InProcessAgent):
    """The real in-process agent, with a log of the verbs sent to it, optional faults per verb,
    and the choice of an agent that does not offer abandon (as an older Tentacle)."""

    def __init__(self, service: ScriptService, *, offer_abandon: bool = True) -> None:
        super().__init__(service)
        self.calls: list[str] = []
        self.started: list[StartScriptCommand] = []
        self.status_sequences: list[int] = []
        self.faults: dict[str, list[Fault]] = {}
        self.offer_abandon = offer_abandon

    def fail(self, verb: str, fault: Fault, times: int = 1) -> None:
        self.faults.setdefault(verb, []).extend([fault] * times)

    async def _call(self, verb: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls.append(verb)
        pending = self.faults.get(verb)
        fault = pending.pop(0) if pending else None
        if fault is not None and not fault.reaches_agent:
            raise fault.error
        answer = await call()
        if fault is not None:
            raise fault.error
        return answer

    async def capabilities(self) -> CapabilitiesResponse:
        offered = await self._call("capabilities", lambda: InProcessAgent.capabilities(self))
        if self.offer_abandon:
            return offered
        return CapabilitiesResponse(supported_capabilities=[Capability.SCRIPT_SERVICE_V2.value])

    async def start_script(self, command: StartScriptCommand) -> ScriptStatusResponse:
        self.started.append(command)
        return await self._call("start_script", lambda: InProcessAgent.start_script(self, command))

    async def get_status(self, request: ScriptStatusRequest) -> ScriptStatusResponse:
        self.status_sequences.append(request.last_log_sequence)
        return await self._call("get_status", lambda: InProcessAgent.get_status(self, request))

    async def cancel_script(self, command: CancelScriptCommand) -> ScriptStatusResponse:
        return await self._call(
            "cancel_script", lambda: InProcessAgent.cancel_script(self, command)
        )

    async def abandon_script(self, command: AbandonScriptCommand) -> ScriptStatusResponse:
        return await self._call(
            "abandon_script", lambda: InProcessAgent.abandon_script(self, command)
        )

    async def complete_script(self, command: CompleteScriptCommand) -> None:
        await self._call("complete_script", lambda: InProcessAgent.complete_script(self, command))


def workspace_exists(service: ScriptService, command: StartScriptCommand) -> bool:
    return Workspace.for_ticket(service.work_root, command.script_ticket).directory.exists()


def stdout_texts(logs: tuple[ProcessOutput, ...] | list[ProcessOutput]) -> list[str]:
    return [r.text for r in logs if r.source is ProcessOutputSource.STDOUT]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def no_script_processes(service: ScriptService) -> None:
    await wait_until(lambda: not processes_of_home(service.home), timeout=10)


# --- the happy path ----------------------------------------------------------------------------


async def test_output_reaches_the_caller_once_and_in_order(service):
    agent = RecordingAgent(service)
    body = "for i in $(seq 1 30); do echo line$i; sleep 0.01; done; echo oops >&2"
    seen: list[ProcessOutput] = []
    command = start_command(unique("happy"), body)
    result = await ScriptExecutor(agent).run(command, asyncio.Event(), seen.append)
    assert (result.state, result.exit_code, result.outcome) == (
        ProcessState.COMPLETE,
        0,
        ScriptOutcome.SUCCEEDED,
    )
    assert seen == list(result.logs)
    lines = [text for text in stdout_texts(result.logs) if text.startswith("line")]
    assert lines == [f"line{i}" for i in range(1, 31)]
    assert [r.text for r in result.logs if r.source is ProcessOutputSource.STDERR] == ["oops"]
    assert agent.calls.count("get_status") >= 2  # the output really came over several polls
    sequences = agent.status_sequences
    assert sequences == sorted(sequences) and sequences[-1] > 0  # only new records are asked for
    assert agent.calls[0] == "start_script" and agent.calls[-1] == "complete_script"
    assert result.cleaned_up and not workspace_exists(service, command)


async def test_a_failing_script_keeps_its_exit_code(service):
    result = await ScriptExecutor(InProcessAgent(service)).run(
        start_command(unique("fail"), "echo no; exit 3"), asyncio.Event()
    )
    assert (result.exit_code, result.outcome, result.reserved_exit_code) == (
        3,
        ScriptOutcome.FAILED,
        None,
    )


async def test_the_first_wait_is_the_settings_unless_the_command_has_its_own(service):
    agent = RecordingAgent(service)
    executor = ScriptExecutor(agent, ExecutorSettings(first_wait=0.5))
    await executor.run(start_command(unique("a"), "true"), asyncio.Event())
    await executor.run(
        start_command(unique("b"), "true", wait=timedelta(seconds=2)), asyncio.Event()
    )
    waits = [c.duration_to_wait_for_script_to_finish for c in agent.started]
    assert waits == [timedelta(seconds=0.5), timedelta(seconds=2)]


# --- cancel and abandon ------------------------------------------------------------------------


async def test_cancel_before_the_start_sends_nothing(service):
    agent = RecordingAgent(service)
    cancel = asyncio.Event()
    cancel.set()
    result = await ScriptExecutor(agent).run(start_command(unique("never"), "true"), cancel)
    assert agent.calls == []
    assert not result.start_sent
    assert (result.exit_code, result.outcome) == (ExitCode.CANCELED, ScriptOutcome.CANCELLED)


async def test_cooperative_script_is_cancelled_promptly(service, tmp_path):
    agent = RecordingAgent(service)
    ready = tmp_path / "ready"
    command = start_command(unique("coop"), COOPERATIVE.format(ready=ready))
    cancel = asyncio.Event()
    running = asyncio.create_task(ScriptExecutor(agent).run(command, cancel))
    await wait_until(ready.exists)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    cancel.set()
    result = await running
    assert loop.time() - asked < 2.0
    assert (result.exit_code, result.outcome) == (130, ScriptOutcome.CANCELLED)
    assert "bye" in stdout_texts(result.logs)
    assert "cancel_script" in agent.calls and "abandon_script" not in agent.calls
    assert result.cleaned_up and not workspace_exists(service, command)


async def test_a_script_that_still_exits_zero_after_a_cancel_is_not_a_success(service, tmp_path):
    ready = tmp_path / "ready"
    body = f"trap 'echo caught; exit 0' INT; touch {ready}; while :; do sleep 0.01; done"
    cancel = asyncio.Event()
    running = asyncio.create_task(
        ScriptExecutor(InProcessAgent(service)).run(start_command(unique("zero"), body), cancel)
    )
    await wait_until(ready.exists)
    cancel.set()
    result = await running
    assert result.exit_code == 0
    assert result.outcome is ScriptOutcome.CANCELLED and not result.succeeded


async def test_a_cancel_during_the_first_wait_is_sent_at_once(service, tmp_path):
    ready = tmp_path / "ready"
    command = start_command(
        unique("early"), COOPERATIVE.format(ready=ready), wait=timedelta(seconds=30)
    )
    cancel = asyncio.Event()
    running = asyncio.create_task(ScriptExecutor(InProcessAgent(service)).run(command, cancel))
    await wait_until(ready.exists)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    cancel.set()
    result = await running
    assert loop.time() - asked < 2.0  # not after StartScript's 30 s wait
    assert result.exit_code == 130


async def test_stubborn_script_escalates_to_abandon(make_service, tmp_path):
    # Ladder graces far longer than the test, so only the abandon can end the script.
    service = await make_service(interrupt_grace=60.0, terminate_grace=60.0)
    agent = RecordingAgent(service)
    pid_file = tmp_path / "stubborn.pid"
    command = start_command(unique("stubborn"), f"echo $$ > {pid_file}; {STUBBORN}")
    cancel = asyncio.Event()
    executor = ScriptExecutor(agent, ExecutorSettings(abandon_after=0.4))
    running = asyncio.create_task(executor.run(command, cancel))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    pid = int(pid_file.read_text())
    loop = asyncio.get_running_loop()
    asked = loop.time()
    cancel.set()
    result = await running
    assert 0.4 <= loop.time() - asked < 5.0
    assert (result.exit_code, result.outcome) == (ExitCode.ABANDONED, ScriptOutcome.ABANDONED)
    assert result.reserved_exit_code is ExitCode.ABANDONED and result.abandon_sent
    before_abandon = agent.calls[: agent.calls.index("abandon_script")]
    assert before_abandon.count("cancel_script") >= 2  # cancel repeated at each poll
    assert "capabilities" in before_abandon
    await wait_until(lambda: not pid_alive(pid), timeout=5)  # abandon kills what it can
    assert result.cleaned_up and not workspace_exists(service, command)


async def test_an_agent_without_abandon_only_ever_receives_cancels(make_service, tmp_path):
    service = await make_service(interrupt_grace=0.6, terminate_grace=0.6)
    agent = RecordingAgent(service, offer_abandon=False)
    ready = tmp_path / "ready"
    command = start_command(unique("old"), f"touch {ready}; {STUBBORN}")
    cancel = asyncio.Event()
    executor = ScriptExecutor(agent, ExecutorSettings(abandon_after=0.1))
    running = asyncio.create_task(executor.run(command, cancel))
    await wait_until(ready.exists)
    cancel.set()
    result = await running
    assert "abandon_script" not in agent.calls and not result.abandon_sent
    assert agent.calls.count("capabilities") == 1
    assert result.exit_code == 128 + 9  # the ladder's SIGKILL ended it
    assert result.outcome is ScriptOutcome.CANCELLED


async def test_mutex_timeout_and_cancel_in_the_queue_say_so(service):
    holder = start_command(unique("holder"), "sleep 30", mutex="shared")
    await service.start_script(holder)
    executor = ScriptExecutor(InProcessAgent(service))
    timed = await executor.run(
        start_command(unique("late"), "true", mutex="shared", timeout=timedelta(seconds=0.3)),
        asyncio.Event(),
    )
    assert (timed.exit_code, timed.outcome) == (ExitCode.TIMEOUT, ScriptOutcome.TIMED_OUT)
    cancel = asyncio.Event()
    queued = asyncio.create_task(
        executor.run(start_command(unique("queued"), "true", mutex="shared"), cancel)
    )
    await asyncio.sleep(0.3)
    cancel.set()
    result = await queued
    assert (result.exit_code, result.reserved_exit_code) == (ExitCode.CANCELED, ExitCode.CANCELED)
    assert "Script execution canceled." in stdout_texts(result.logs)
    await service.cancel_script(CancelScriptCommand(ticket=holder.script_ticket))


# --- CompleteScript on every path --------------------------------------------------------------


async def test_a_cancelled_caller_still_completes_the_script(service, tmp_path):
    agent = RecordingAgent(service)
    pid_file = tmp_path / "pid"
    command = start_command(unique("caller"), f"echo $$ > {pid_file}; sleep 30")
    running = asyncio.create_task(ScriptExecutor(agent).run(command, asyncio.Event()))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert agent.calls[-2:] == ["cancel_script", "complete_script"]
    assert not workspace_exists(service, command)
    await no_script_processes(service)


async def test_a_caller_cancelled_twice_still_completes_the_script(service, tmp_path):
    """The second cancel lands while CompleteScript is under way; the shield lets it finish."""
    ready = tmp_path / "ready"
    body = f"trap 'sleep 0.5; exit 1' INT; touch {ready}; while :; do sleep 0.01; done"
    command = start_command(unique("twice"), body)
    running = asyncio.create_task(
        ScriptExecutor(InProcessAgent(service)).run(command, asyncio.Event())
    )
    await wait_until(ready.exists)
    running.cancel()
    await asyncio.sleep(0.1)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert workspace_exists(service, command)  # the script is still stopping
    await wait_until(lambda: not workspace_exists(service, command), timeout=10)


async def test_a_start_whose_answer_failed_still_completes_the_script(service):
    agent = RecordingAgent(service)
    agent.fail("start_script", Fault(RuntimeError("connection reset"), reaches_agent=True))
    command = start_command(unique("reset"), "sleep 30")
    with pytest.raises(RuntimeError, match="connection reset"):
        await ScriptExecutor(agent).run(command, asyncio.Event())
    assert agent.calls == ["start_script", "cancel_script", "complete_script"]
    assert not workspace_exists(service, command)
    await no_script_processes(service)


async def test_a_start_the_agent_refused_is_still_completed(make_service):
    service = await make_service(minimum_free_disk_bytes=10**18)
    agent = RecordingAgent(service)
    command = start_command(unique("full"), "true")
    with pytest.raises(OSError, match="does not have enough free disk space"):
        await ScriptExecutor(agent).run(command, asyncio.Event())
    assert agent.calls == ["start_script", "cancel_script", "complete_script"]


async def test_a_failing_output_listener_does_not_leave_the_script_behind(service):
    def listener(record: ProcessOutput) -> None:
        raise ValueError("listener broke")

    command = start_command(unique("listener"), "echo hi; sleep 30")
    with pytest.raises(ValueError, match="listener broke"):
        await ScriptExecutor(InProcessAgent(service)).run(command, asyncio.Event(), listener)
    assert not workspace_exists(service, command)
    await no_script_processes(service)


async def test_a_failed_cleanup_is_a_warning_not_an_error(service, caplog):
    agent = RecordingAgent(service)
    agent.fail("complete_script", Fault(AgentUnavailableError("connection refused")))
    command = start_command(unique("dirty"), "echo done")
    result = await ScriptExecutor(agent).run(command, asyncio.Event())
    assert result.succeeded and not result.cleaned_up
    assert workspace_exists(service, command)
    assert "Failed to clean up the workspace of script" in caplog.text
    assert "connection refused" in caplog.text


# --- an agent that stops answering -------------------------------------------------------------


async def test_a_lost_start_answer_is_retried_without_running_twice(service, tmp_path):
    agent = RecordingAgent(service)
    agent.fail("start_script", Fault(AgentUnavailableError("lost"), reaches_agent=True))
    runs = tmp_path / "runs"
    command = start_command(unique("twice"), f"echo ran >> {runs}; echo hello")
    result = await ScriptExecutor(agent).run(command, asyncio.Event())
    assert result.exit_code == 0
    assert agent.calls.count("start_script") == 2
    assert runs.read_text() == "ran\n"
    assert stdout_texts(result.logs).count("hello") == 1


async def test_a_short_outage_loses_and_repeats_no_output(service):
    agent = RecordingAgent(service)
    agent.fail("get_status", Fault(AgentUnavailableError("down")), times=3)
    agent.fail("get_status", Fault(AgentUnavailableError("answer lost"), reaches_agent=True))
    body = "for i in $(seq 1 20); do echo n$i; sleep 0.02; done"
    result = await ScriptExecutor(agent).run(start_command(unique("outage"), body), asyncio.Event())
    assert result.exit_code == 0
    assert [t for t in stdout_texts(result.logs) if t.startswith("n")] == [
        f"n{i}" for i in range(1, 21)
    ]


async def test_a_long_outage_surfaces_and_the_script_is_still_completed(service):
    agent = RecordingAgent(service)
    agent.fail("get_status", Fault(AgentUnavailableError("no route to host")), times=10_000)
    command = start_command(unique("gone"), "sleep 30")
    executor = ScriptExecutor(agent, ExecutorSettings(unavailable_for=0.3))
    with pytest.raises(AgentUnavailableError, match=r"has not answered .*no route to host"):
        await executor.run(command, asyncio.Event())
    assert agent.calls[-2:] == ["cancel_script", "complete_script"]
    assert not workspace_exists(service, command)
    await no_script_processes(service)


# --- settings ----------------------------------------------------------------------------------


def test_the_back_off_grows_to_its_cap_and_restarts():
    delays = Backoff(BackoffSchedule(initial=0.1, factor=2, maximum=0.5))
    assert [delays.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    delays.reset()
    assert delays.next() == 0.1


def test_the_default_schedule_starts_low_and_is_capped():
    delays = Backoff(ExecutorSettings().poll)
    first = [delays.next() for _ in range(100)]
    assert first[0] == 0.05 and first[1] == pytest.approx(0.0575)
    assert max(first) == first[-1] == 1.0


@pytest.mark.parametrize(
    ("values", "field", "rule"),
    [
        ({"poll": {"initial": 0}}, "poll.initial", "greater than 0"),
        ({"poll": {"initial": 2, "maximum": 1}}, "poll", "must not be below initial"),
        ({"poll": {"factor": 0.5}}, "poll.factor", "greater than or equal to 1"),
        ({"abandon_after": -1}, "abandon_after", "greater than or equal to 0"),
        ({"unavailable_for": "soon"}, "unavailable_for", "valid number"),
        ({"polling": 1}, "polling", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_field_and_the_rule(values, field, rule):
    with pytest.raises(ExecutorSettingsError) as caught:
        ExecutorSettings.create(**values)
    assert rule in caught.value.problems[field]


def test_never_abandoning_is_a_setting():
    assert ExecutorSettings.create(abandon_after=None).abandon_after is None


def test_a_never_sent_script_reads_as_cancelled_before_it_started():
    result = ScriptResult.not_started(ticket("x"))
    assert (result.state, result.reserved_exit_code, result.start_sent) == (
        ProcessState.COMPLETE,
        ExitCode.CANCELED,
        False,
    )
