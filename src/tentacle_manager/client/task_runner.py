"""Runs a task: its steps in order, each step on all its agents at once.

Step N+1 starts only when step N succeeded on every agent. Once the task's cancel event is
set, no step starts, whatever happens afterwards: a step that still ends with 0 after the
cancel does not let the next one start (seed 000; Tentacle's client throws
OperationCanceledException then), and the task ends CANCELLED, never SUCCEEDED.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from tentacle_manager.client.executor import ExecutorSettings, ScriptExecutor, ScriptResult
from tentacle_manager.client.protocol import ScriptServiceClient
from tentacle_manager.client.task import Step, Task, TaskError
from tentacle_manager.contracts import ProcessOutput, ScriptTicket

# Called with the step name, the agent name and one output record, as records arrive.
TaskOutputListener = Callable[[str, str, ProcessOutput], None]


class TaskOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class StepResult:
    """One step on each of its agents: a ScriptResult, or the error that ended the watch
    (for example an agent unreachable for longer than the executor's `unavailable_for`)."""

    step: str
    scripts: Mapping[str, ScriptResult]
    errors: Mapping[str, str]

    @property
    def succeeded(self) -> bool:
        return not self.errors and all(result.succeeded for result in self.scripts.values())


@dataclass(frozen=True)
class TaskResult:
    """`steps` holds the steps that were begun, in order; the rest never started."""

    task: str
    outcome: TaskOutcome
    steps: tuple[StepResult, ...]


class TaskRunner:
    def __init__(
        self,
        settings: ExecutorSettings | None = None,
        on_output: TaskOutputListener | None = None,
    ) -> None:
        self._settings = settings or ExecutorSettings()
        self._on_output = on_output

    async def run(
        self, task: Task, agents: Mapping[str, ScriptServiceClient], cancel: asyncio.Event
    ) -> TaskResult:
        """Raises TaskError, before anything starts, when a step names an agent not given."""
        _check_agents(task, agents)
        executors = {
            name: ScriptExecutor(client, self._settings) for name, client in agents.items()
        }
        done: list[StepResult] = []
        for step in task.steps:
            # This check only ends the loop. The one that guards StartScript is in
            # ScriptExecutor.run, directly before the call: the scripts of a step run as tasks,
            # which begin at a later turn of the event loop, so a cancel set in between would
            # slip past a check made here alone.
            if cancel.is_set():
                break
            result = await self._run_step(task, step, executors, cancel)
            done.append(result)
            if not result.succeeded:
                break
        return TaskResult(task.name, _outcome(task, done, cancel), tuple(done))

    async def _run_step(
        self,
        task: Task,
        step: Step,
        executors: Mapping[str, ScriptExecutor],
        cancel: asyncio.Event,
    ) -> StepResult:
        """Every agent's script runs to its end, even when another agent's fails: a script
        cannot be taken back half-way, and Tentacle lets the step finish on the others too."""
        task_id = task.script_task_id(step)
        async with asyncio.TaskGroup() as group:
            runs = {
                agent: group.create_task(
                    self._run_script(step, agent, executors[agent], task_id, cancel)
                )
                for agent in step.agents
            }
        scripts: dict[str, ScriptResult] = {}
        errors: dict[str, str] = {}
        for agent, run in runs.items():
            outcome = run.result()
            if isinstance(outcome, ScriptResult):
                scripts[agent] = outcome
            else:
                errors[agent] = outcome
        return StepResult(step.name, scripts, errors)

    async def _run_script(
        self,
        step: Step,
        agent: str,
        executor: ScriptExecutor,
        task_id: str,
        cancel: asyncio.Event,
    ) -> ScriptResult | str:
        """The script's result, or what went wrong in words. The error is kept rather than
        raised so that it cannot cut short the other agents of the step."""
        command = step.start_command(ScriptTicket(task_id=uuid.uuid4().hex), task_id)
        listener = self._on_output
        try:
            return await executor.run(
                command,
                cancel,
                None if listener is None else lambda record: listener(step.name, agent, record),
            )
        except Exception as error:
            return f"{type(error).__name__}: {error}"


def _check_agents(task: Task, agents: Mapping[str, ScriptServiceClient]) -> None:
    missing = {
        f"steps[{index}].agents[{position}]": f"no client was given for agent {name!r}"
        for index, step in enumerate(task.steps)
        for position, name in enumerate(step.agents)
        if name not in agents
    }
    if missing:
        raise TaskError(missing)


def _outcome(task: Task, done: list[StepResult], cancel: asyncio.Event) -> TaskOutcome:
    if cancel.is_set():
        return TaskOutcome.CANCELLED
    if len(done) == len(task.steps) and all(step.succeeded for step in done):
        return TaskOutcome.SUCCEEDED
    return TaskOutcome.FAILED
