"""The cancellation fire drill end to end, through a real agent over mutual TLS on loopback:
real bash scripts, real grandchildren (one in a session of its own, one holding the output),
the agent's real cancel ladder (shortened to 1 s per rung), and the process table read
independently afterwards."""

from __future__ import annotations

import re
import time
from pathlib import Path

import psutil

from tentacle_manager.agent.process.tree import processes_of_home
from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import ScriptPhase
from tentacle_manager.diagnostics.fire_drill import (
    FILE_COUNT,
    DrillOptions,
    DrillStep,
    run_fire_drill,
)
from tentacle_manager.diagnostics.stages import Outcome, StageResult
from tests.api_support import Pki, agent_client, running_agent
from tests.network_support import closed_port
from tests.support import ServiceFactory, pid_alive

STEPS = [step.value for step in DrillStep]


def rung(rungs: list[StageResult], step: DrillStep) -> StageResult:
    return next(result for result in rungs if result.stage == step.value)


async def test_the_drill_passes_on_this_machine_with_every_rung_graded_and_timed(
    service: ScriptService, pki: Pki, tmp_path: Path
) -> None:
    rungs: list[StageResult] = []
    notes: list[str] = []
    started = time.monotonic()
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.admin, tmp_path, "admin") as agent,
    ):
        report = await run_fire_drill(
            agent, service.work_root, on_rung=rungs.append, on_note=notes.append
        )
        mutexes = await agent.mutexes()
    took = time.monotonic() - started

    assert report.passed, [r.to_json() for r in report.rungs]
    assert [r.stage for r in report.rungs] == STEPS
    assert rungs == list(report.rungs)  # each was reported as it was graded
    assert all(r.outcome is Outcome.PASSED for r in rungs)

    ready = rung(rungs, DrillStep.STARTED)
    script, session, holder = (
        int(ready.facts[name]) for name in ("script_pid", "session_pid", "holder_pid")
    )
    assert f"{FILE_COUNT} files written in {service.work_root}" in ready.detail
    assert ready.facts["tracking_tag"].startswith("tentacle_fire-drill-")

    # The agent's own record of the ladder: SIGINT and SIGTERM were ignored, SIGKILL ended it.
    assert [r.signal for r in report.ladder] == ["SIGINT", "SIGTERM", "SIGKILL"]
    first = report.ladder[0]
    assert {script, session, holder} <= set(first.signalled)  # the session child too
    assert {script, session, holder} <= set(first.alive_after)
    assert report.ladder[-1].alive_after == []
    signal = rung(rungs, DrillStep.SIGNAL_DELIVERED)
    assert 0 <= signal.seconds < 1.0  # the first rung goes at once
    assert re.fullmatch(
        r"SIGINT reached \d+ process\(es\) [0-9.]+ s after the cancel; the script's own trap "
        r"confirmed it [0-9.]+ s after the cancel; the ladder: SIGINT, SIGTERM 1\.\d+ s later, "
        r"SIGKILL 1\.\d+ s later",
        signal.detail,
    ), signal.detail
    assert any("received SIGINT" in note for note in notes)
    assert any("received SIGTERM" in note for note in notes)

    tree = rung(rungs, DrillStep.TREE_KILLED)
    assert 2.0 <= tree.seconds < 8.0  # two 1 s rungs ignored, then SIGKILL
    assert f"the grandchild in its own session ({session})" in tree.detail
    assert f"the one holding the output ({holder})" in tree.detail
    for pid in (script, session, holder):
        assert not pid_alive(pid)
    assert processes_of_home(service.home) == []  # nothing tagged for this home survives

    released = rung(rungs, DrillStep.PIPES_RELEASED)
    assert report.cancel_seconds == released.seconds
    assert 2.0 <= released.seconds < 8.0
    assert "exit code 137 (killed by SIGKILL)" in released.detail

    deleted = rung(rungs, DrillStep.WORKSPACE_DELETED)
    assert list(service.work_root.iterdir()) == []
    assert f"the {FILE_COUNT} files the script wrote were deleted" in deleted.detail

    freed = rung(rungs, DrillStep.MUTEX_FREED)
    assert freed.detail.startswith("a second script acquired the mutex fire-drill-")
    assert freed.seconds < 5.0
    assert mutexes.mutexes == []

    assert report.verdict.startswith("Cancel works on this machine: the script and all its ")
    assert took < 20.0


async def test_an_agent_that_cannot_kill_fails_the_drill_and_is_cleaned_up(
    make_service: ServiceFactory, pki: Pki, tmp_path: Path
) -> None:
    """The test-only kill switch makes every signal a no-op: the drill must say cancel does
    not work here, name the survivors, and still leave the agent with no open ticket."""
    service = await make_service(disable_process_kill=True, allow_unsafe_test_settings=True)
    rungs: list[StageResult] = []
    async with (
        running_agent(service, pki, tmp_path) as address,
        agent_client(address, pki, pki.admin, tmp_path, "admin") as agent,
    ):
        report = await run_fire_drill(
            agent, service.work_root, DrillOptions(cancel_timeout=3.5), on_rung=rungs.append
        )
        left = await agent.list_scripts()
    assert not report.passed
    outcomes = {r.stage: r.outcome for r in report.rungs}
    assert outcomes == {
        "started": Outcome.PASSED,
        "signal-delivered": Outcome.FAILED,
        "tree-killed": Outcome.FAILED,
        "pipes-released": Outcome.FAILED,
        "workspace-deleted": Outcome.SKIPPED,
        "mutex-freed": Outcome.SKIPPED,
    }
    script = int(rung(rungs, DrillStep.STARTED).facts["script_pid"])
    signal = rung(rungs, DrillStep.SIGNAL_DELIVERED)
    assert signal.detail == (
        f"the agent sent SIGINT to no process but not to the script ({script})"
    )
    tree = rung(rungs, DrillStep.TREE_KILLED)
    assert re.match(
        r"\d+ process\(es\) of the script are still alive after the cancel: ", tree.detail
    )
    assert f"{script} (bash)" in tree.detail
    assert rung(rungs, DrillStep.PIPES_RELEASED).detail == (
        "the script had not reached its final state 3.5 s after the cancel"
    )
    assert rung(rungs, DrillStep.MUTEX_FREED).detail == (
        "not tried: the script did not end after the cancel, so it was abandoned"
    )
    assert report.verdict.startswith(
        "Cancel does NOT fully work on this machine: signal delivered, process tree killed, "
        "output released: the script reached its final state failed."
    )
    # Abandoned, so its mutex is free; the survivors the agent could not kill are quarantined
    # with the workspace they may still use (the fixture kills them afterwards).
    assert [(s.ticket.task_id, s.phase) for s in left.scripts] == [
        (report.ticket, ScriptPhase.ABANDONED)
    ]
    assert [entry.ticket.task_id for entry in left.quarantined] == [report.ticket]
    assert psutil.pid_exists(script)


async def test_an_agent_that_cannot_be_reached_fails_the_first_rung(
    pki: Pki, tmp_path: Path
) -> None:
    port = closed_port()
    async with agent_client(
        f"https://127.0.0.1:{port}", pki, pki.admin, tmp_path, "admin"
    ) as agent:
        report = await run_fire_drill(agent, tmp_path / "Work")
    started, *rest = report.rungs
    assert started.outcome is Outcome.FAILED
    assert started.detail.startswith(
        f"the agent could not be used: Cannot reach the agent at 127.0.0.1:{port}"
    )
    assert started.remedy is not None and "tentacle check-connectivity" in started.remedy
    assert [r.outcome for r in rest] == [Outcome.SKIPPED] * 5
    assert all(r.detail == "not tried: the agent could not be used" for r in rest)
    assert report.verdict.startswith(
        "The fire drill could not run on this machine: the agent could not be used: "
    )
    assert report.verdict.endswith(
        "Check the connection to the agent first: `tentacle check-connectivity`."
    )
