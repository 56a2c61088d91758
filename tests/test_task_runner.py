"""The task runner over real script services: step order, a failing agent stops the task, and
once a task is cancelled no further step starts (seed 000), over many random cancel timings."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tentacle_manager.client.executor import ExecutorSettings, ScriptOutcome
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.client.task import Step, Task, TaskError
from tentacle_manager.client.task_runner import TaskOutcome, TaskRunner
from tentacle_manager.contracts import ProcessOutput, ScriptIsolationLevel, ticket
from tests.support import wait_until
from tests.test_executor import Fault, RecordingAgent

AGENT = 'agent=$(basename "$TentacleHome"); agent=${agent#home-}'


@pytest.fixture
async def agents(make_service, tmp_path) -> dict[str, RecordingAgent]:
    return {
        name: RecordingAgent(await make_service(home=tmp_path / f"home-{name}"))
        for name in ("a", "b")
    }


def task(*steps: Step, name: str = "Deploy") -> Task:
    return Task(name=name, steps=steps)


def step(name: str, script: str, *agents: str) -> Step:
    return Step(name=name, agents=agents or ("a",), script=script)


async def test_steps_run_in_order_on_each_of_their_agents(agents, tmp_path):
    order = tmp_path / "order"

    def record(name: str) -> str:
        return f'{AGENT}; echo "$agent {name}" >> {order}'

    heard: list[tuple[str, str, ProcessOutput]] = []
    runner = TaskRunner(on_output=lambda s, a, r: heard.append((s, a, r)))
    result = await runner.run(
        task(
            step("one", record("one"), "a", "b"),
            step("two", record("two"), "a"),
            step("three", record("three"), "b", "a"),
        ),
        agents,
        asyncio.Event(),
    )
    assert result.outcome is TaskOutcome.SUCCEEDED
    assert [(s.step, sorted(s.scripts)) for s in result.steps] == [
        ("one", ["a", "b"]),
        ("two", ["a"]),
        ("three", ["a", "b"]),
    ]
    lines = order.read_text().splitlines()
    assert [line for line in lines if line.startswith("a ")] == ["a one", "a two", "a three"]
    assert [line for line in lines if line.startswith("b ")] == ["b one", "b three"]
    # set ordering: step two ran after both agents finished step one
    assert lines.index("a two") > max(lines.index("a one"), lines.index("b one"))
    # the task id that mutex inspectors and the log show
    first = result.steps[0].scripts["a"]
    assert "Acquiring isolation mutex RunningScript with FullIsolation in Deploy/one" in [
        r.text for r in first.logs
    ]
    tickets = {s.scripts[a].ticket for s in result.steps for a in s.scripts}
    assert len(tickets) == 5  # a new ticket for every script
    assert {(s, a) for s, a, _ in heard} == {
        ("one", "a"),
        ("one", "b"),
        ("two", "a"),
        ("three", "a"),
        ("three", "b"),
    }


async def test_a_step_failing_on_one_agent_stops_the_task(agents, tmp_path):
    finished = tmp_path / "a-finished"
    first = f'{AGENT}; if [ "$agent" = b ]; then exit 4; fi; sleep 0.3; touch {finished}'
    result = await TaskRunner().run(
        task(step("one", first, "a", "b"), step("two", f"touch {tmp_path}/two", "a", "b")),
        agents,
        asyncio.Event(),
    )
    assert result.outcome is TaskOutcome.FAILED
    (one,) = result.steps
    assert (one.scripts["b"].exit_code, one.scripts["a"].exit_code) == (4, 0)
    assert finished.exists()  # the other agent's script ran to its end
    assert not (tmp_path / "two").exists()
    assert [agent.calls.count("start_script") for agent in agents.values()] == [1, 1]


async def test_an_agent_error_fails_the_step_for_that_agent_only(agents, tmp_path):
    agents["b"].fail("start_script", Fault(RuntimeError("the agent refused the request")))
    result = await TaskRunner().run(
        task(step("one", "echo fine", "a", "b"), step("two", "echo never", "a")),
        agents,
        asyncio.Event(),
    )
    assert result.outcome is TaskOutcome.FAILED
    (one,) = result.steps
    assert one.scripts["a"].succeeded and "b" not in one.scripts
    assert one.errors == {"b": "RuntimeError: the agent refused the request"}


async def test_an_unreachable_agent_fails_its_step_once_the_outage_is_too_long(agents):
    agents["b"].fail("start_script", Fault(AgentUnavailableError("no route")), times=10_000)
    runner = TaskRunner(ExecutorSettings(unavailable_for=0.2))
    result = await runner.run(task(step("one", "true", "a", "b")), agents, asyncio.Event())
    assert result.outcome is TaskOutcome.FAILED
    assert "has not answered" in result.steps[0].errors["b"]


async def test_an_agent_without_a_client_is_refused_before_anything_starts(agents):
    with pytest.raises(TaskError) as caught:
        await TaskRunner().run(
            task(step("one", "true", "a"), step("two", "true", "a", "c")),
            agents,
            asyncio.Event(),
        )
    assert caught.value.problems == {"steps[1].agents[1]": "no client was given for agent 'c'"}
    assert all(agent.calls == [] for agent in agents.values())


async def test_a_cancel_stops_the_running_scripts_of_the_step(agents, tmp_path):
    body = (
        f"{AGENT}; trap 'exit 130' INT; touch {tmp_path}/ready-$agent; while :; do sleep 0.01; done"
    )
    cancel = asyncio.Event()
    running = asyncio.create_task(
        TaskRunner().run(
            task(step("one", body, "a", "b"), step("two", f"touch {tmp_path}/two", "a")),
            agents,
            cancel,
        )
    )
    await wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 2)
    cancel.set()
    result = await asyncio.wait_for(running, 5)
    assert result.outcome is TaskOutcome.CANCELLED
    (one,) = result.steps
    assert {a: r.exit_code for a, r in one.scripts.items()} == {"a": 130, "b": 130}
    assert not (tmp_path / "two").exists()


async def test_a_task_cancelled_during_step_one_never_starts_step_two(make_service, tmp_path):
    """50 runs, the cancel at a random moment: before step one was sent, while it starts, or
    while it runs. Step one ignores SIGINT and is released only after the cancel, so it often
    still ends with 0; even then, step two must never start."""
    agent = RecordingAgent(await make_service(home=tmp_path / "home"))
    runner = TaskRunner(ExecutorSettings(poll={"initial": 0.01, "maximum": 0.05}))
    rng = random.Random(20260523)
    zero_after_cancel = 0
    for attempt in range(50):
        markers = tmp_path / f"run{attempt}"
        markers.mkdir()
        job = three_steps(markers)
        starts_before = agent.calls.count("start_script")
        cancel = asyncio.Event()
        running = asyncio.create_task(runner.run(job, {"a": agent}, cancel))
        await asyncio.sleep(rng.uniform(0, 0.08))
        cancel.set()
        await asyncio.sleep(rng.uniform(0, 0.03))
        (markers / "release").touch()
        result = await asyncio.wait_for(running, 10)

        assert result.outcome is TaskOutcome.CANCELLED, attempt
        assert not (markers / "two").exists() and not (markers / "three").exists(), attempt
        assert agent.calls.count("start_script") - starts_before <= 1, attempt
        assert [s.step for s in result.steps] in ([], ["one"]), attempt
        if (markers / "one-done").exists():
            script = result.steps[0].scripts["a"]
            assert (script.exit_code, script.outcome) == (0, ScriptOutcome.CANCELLED)
            zero_after_cancel += 1
    # the dangerous case, a step ending well after the cancel, really was exercised
    assert zero_after_cancel >= 10


def three_steps(markers: Path) -> Task:
    one = (
        f"touch {markers}/one; trap '' INT; "
        f"while [ ! -e {markers}/release ]; do sleep 0.005; done; touch {markers}/one-done"
    )
    return Task(
        name="Cancelled",
        steps=(
            Step(name="one", agents=("a",), script=one),
            Step(name="two", agents=("a",), script=f"touch {markers}/two"),
            Step(name="three", agents=("a",), script=f"touch {markers}/three"),
        ),
    )


def test_step_rules_name_the_field():
    with pytest.raises(TaskError) as caught:
        Task.from_data(
            {
                "name": "",
                "steps": [
                    {"name": "x", "agents": [], "script": "true"},
                    {"name": "y", "agents": ["a", "a"], "script": "true", "isolation": "half"},
                    {"name": "z", "agents": ["a"], "script": "true", "mutex_timeout": -5},
                ],
            }
        )
    problems = caught.value.problems
    assert "at least 1 character" in problems["name"]
    assert "must name at least one agent" in problems["steps[0].agents"]
    assert "names agent 'a' more than once" in problems["steps[1].agents"]
    assert "must be 'full' or 'none'" in problems["steps[1].isolation"]
    assert "must be a number of seconds from 0" in problems["steps[2].mutex_timeout"]


def test_step_names_must_differ():
    steps = [{"name": name, "agents": ["a"], "script": "true"} for name in ("same", "x", "same")]
    with pytest.raises(TaskError) as caught:
        Task.from_data({"name": "t", "steps": steps})
    assert "steps[2] and steps[0] are both called 'same'" in str(caught.value)


def test_a_step_becomes_a_start_command():
    made = Step(
        name="s",
        agents=("a",),
        script="echo hi",
        isolation="none",
        mutex="web",
        mutex_timeout="00:01:30",
    )
    command = made.start_command(ticket("abc"), "T/s")
    assert command.isolation is ScriptIsolationLevel.NO_ISOLATION
    assert (command.mutex_name, command.mutex_timeout.total_seconds()) == ("web", 90)
    assert (command.task_id, command.script_body) == ("T/s", "echo hi")
