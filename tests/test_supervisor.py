"""The user-mode supervisor with real processes: a small Python program plays the agent.

Every process these tests start carries the test's tmp_path in its command line, and a fixture
kills whatever is left of them, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from tentacle_manager.platform.services import (
    ManagerKind,
    ServiceError,
    ServiceManager,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    SupervisorManager,
    SystemdManager,
    WindowsServiceManager,
    choose_manager,
)
from tentacle_manager.platform.services.spec import Completed, RestartPolicy
from tentacle_manager.platform.services.supervisor import (
    Phase,
    PidRecord,
    StateDirectory,
    default_state_root,
)
from tentacle_manager.platform.services.supervisor_process import RestartBudget

AGENT = r"""
import os, signal, subprocess, sys, time
from pathlib import Path

marks, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "with-script":
    script = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(marks)], start_new_session=True
    )
    (marks / "script.pid").write_text(str(script.pid))
with (marks / "starts").open("a") as starts:
    starts.write(f"{os.getpid()}\n")
if mode == "crash":
    time.sleep(0.3)
    sys.exit(3)
time.sleep(60)
"""
FAST = dict(stop_grace=1.0, backoff_initial=0.05, backoff_max=0.2, crash_limit=3, crash_window=30)


def ours(tmp_path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions tmp_path."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
            continue
        if any(str(tmp_path) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
    return result


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    for process in ours(tmp_path):
        process.kill()


@pytest.fixture
def manager(tmp_path: Path) -> SupervisorManager:
    return SupervisorManager(tmp_path / "state", stop_margin=1.0)


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., ServiceSpec]:
    program = tmp_path / "agent.py"
    program.write_text(AGENT)
    marks = tmp_path / "marks"
    marks.mkdir()

    def factory(mode: str = "sleep", restart: dict[str, float] | None = None, **fields: Any):
        return ServiceSpec.create(
            instance="Test Agent",
            argv=[sys.executable, str(program), str(marks), mode],
            restart={**FAST, **(restart or {})},
            **fields,
        )

    return factory


def starts(tmp_path: Path) -> list[int]:
    path = tmp_path / "marks" / "starts"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def wait_marked(tmp_path: Path, agent: psutil.Process) -> list[int]:
    """The pids of every agent start, once `agent` has recorded its own."""
    return wait_until(lambda: agent.pid in starts(tmp_path) and starts(tmp_path))


def agent_of(manager: SupervisorManager, spec: ServiceSpec) -> psutil.Process:
    state = manager.state_directory(spec)
    return wait_until(lambda: state.live(state.agent_pid))


def supervisor_of(manager: SupervisorManager, spec: ServiceSpec) -> psutil.Process:
    state = manager.state_directory(spec)
    process = state.live(state.supervisor_pid)
    assert process is not None
    return process


def test_install_start_status_stop_uninstall(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec(username=psutil.Process().username(), password="hunter2-secret")
    state = manager.state_directory(spec)
    assert state.path == tmp_path / "state" / "Test-Agent"
    assert manager.status(spec) is ServiceStatus.NOT_INSTALLED

    manager.install(spec)
    assert manager.status(spec) is ServiceStatus.STOPPED
    written = json.loads(state.spec.read_text())
    assert written["argv"] == list(spec.argv)
    assert written["user"] is None  # the current user: no switch
    assert "hunter2-secret" not in state.spec.read_text()

    manager.start(spec)
    assert manager.status(spec) is ServiceStatus.RUNNING
    supervisor, agent = supervisor_of(manager, spec), agent_of(manager, spec)
    assert agent.ppid() == supervisor.pid
    assert supervisor.ppid() != os.getpid()  # detached: not our child
    assert os.getsid(supervisor.pid) != os.getsid(0)
    assert os.getpgid(agent.pid) == agent.pid  # the agent leads its own process group
    assert wait_marked(tmp_path, agent) == [agent.pid]

    manager.start(spec)  # already running: nothing happens
    assert supervisor_of(manager, spec).pid == supervisor.pid
    assert starts(tmp_path) == [agent.pid]

    manager.stop(spec)
    assert manager.status(spec) is ServiceStatus.STOPPED
    assert not state.supervisor_pid.exists() and not state.agent_pid.exists()
    assert ours(tmp_path) == []
    log = state.supervisor_log.read_text()
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +\[\d+\] Agent started", log, re.M
    )
    assert "hunter2-secret" not in log

    manager.uninstall(spec)
    assert manager.status(spec) is ServiceStatus.NOT_INSTALLED
    assert not state.path.exists()
    manager.uninstall(spec)  # again: nothing to do
    manager.stop(spec)


def test_agent_killed_is_restarted_with_a_new_pid(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec()
    manager.install(spec)
    manager.start(spec)
    first = agent_of(manager, spec)
    wait_marked(tmp_path, first)
    first.kill()
    second = wait_until(lambda: (agent := agent_of(manager, spec)).pid != first.pid and agent)
    assert wait_until(lambda: manager.status(spec) is ServiceStatus.RUNNING)
    assert wait_marked(tmp_path, second) == [first.pid, second.pid]
    log = manager.state_directory(spec).supervisor_log.read_text()
    assert "Agent exited with signal SIGKILL" in log
    manager.stop(spec)
    assert ours(tmp_path) == []


def test_agent_ignoring_sigterm_is_killed_after_the_grace(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec("ignore-term", {"stop_grace": 0.5})
    manager.install(spec)
    manager.start(spec)
    wait_until(lambda: starts(tmp_path))  # SIGTERM is ignored from here on
    began = time.monotonic()
    manager.stop(spec)
    assert 0.5 <= time.monotonic() - began < 5
    assert ours(tmp_path) == []
    log = manager.state_directory(spec).supervisor_log.read_text()
    assert "SIGKILL" in log and "Agent exited with signal SIGKILL" in log


def test_crash_loop_gives_up_and_reports_failed(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec("crash")
    manager.install(spec)
    manager.start(spec)
    wait_until(lambda: manager.status(spec) is ServiceStatus.FAILED)
    reason = manager.status_with_reason(spec)[1]
    assert "crash loop: the agent exited 4 times within 30 s (last: exit code 3)" in reason
    assert len(starts(tmp_path)) == FAST["crash_limit"] + 1
    wait_until(lambda: ours(tmp_path) == [])
    manager.start(spec)  # a failed service can be started again
    assert manager.status(spec) is ServiceStatus.RUNNING
    manager.stop(spec)


def test_start_failure_raises_with_the_log_tail(manager: SupervisorManager, tmp_path: Path) -> None:
    not_a_program = tmp_path / "not-a-program"
    not_a_program.write_text("this is not a program\n")
    not_a_program.chmod(0o755)
    spec = ServiceSpec.create(instance="broken", argv=[str(not_a_program)])
    manager.install(spec)
    with pytest.raises(ServiceError) as raised:
        manager.start(spec)
    assert "could not start the agent" in raised.value.message
    assert "Exec format error" in raised.value.message  # from the tail of supervisor.log
    assert str(manager.state_directory(spec).agent_log) in raised.value.remedy
    assert manager.status(spec) is ServiceStatus.FAILED
    assert ours(tmp_path) == []


def test_stale_pid_files_of_an_unrelated_process_are_not_ours(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec()
    manager.install(spec)
    state = manager.state_directory(spec)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(unrelated.pid).create_time()
        for path in (state.supervisor_pid, state.agent_pid):  # as if killed while running
            state.write_pid(path, PidRecord(pid=unrelated.pid, create_time=created + 5))
        state.write_status(Phase.RUNNING)
        status, reason = manager.status_with_reason(spec)
        assert status is ServiceStatus.FAILED and "ended without stopping cleanly" in reason

        state.write_pid(state.supervisor_pid, PidRecord(pid=unrelated.pid, create_time=1.0))
        assert manager.status(spec) is ServiceStatus.STOPPED  # a record from before the boot

        manager.start(spec)
        assert supervisor_of(manager, spec).pid != unrelated.pid
        assert manager.status(spec) is ServiceStatus.RUNNING
        manager.stop(spec)
        assert unrelated.poll() is None  # never signalled
    finally:
        unrelated.kill()
        unrelated.wait()


def test_scripts_in_their_own_session_survive_stop_and_restart(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec("with-script")
    manager.install(spec)
    manager.start(spec)
    first = agent_of(manager, spec)
    wait_marked(tmp_path, first)
    script_pid = int((tmp_path / "marks" / "script.pid").read_text())
    manager.restart(spec)
    assert agent_of(manager, spec).pid != first.pid
    manager.stop(spec)
    assert psutil.pid_exists(script_pid)
    assert psutil.Process(script_pid).status() != psutil.STATUS_ZOMBIE


def test_a_hung_supervisor_and_its_agent_are_killed(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec(restart={"stop_grace": 0.3})
    manager.install(spec)
    manager.start(spec)
    agent_of(manager, spec)
    supervisor_of(manager, spec).send_signal(signal.SIGSTOP)
    began = time.monotonic()
    manager.stop(spec)
    assert time.monotonic() - began >= 1.3  # grace + margin before the escalation
    assert ours(tmp_path) == []
    assert manager.status(spec) is ServiceStatus.STOPPED


def test_an_agent_orphaned_by_a_killed_supervisor_is_replaced(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec()
    manager.install(spec)
    manager.start(spec)
    orphan = agent_of(manager, spec)
    supervisor_of(manager, spec).kill()
    wait_until(lambda: manager.status(spec) is ServiceStatus.FAILED)
    assert orphan.is_running()
    manager.start(spec)
    assert wait_until(lambda: not orphan.is_running() or orphan.status() == "zombie")
    assert agent_of(manager, spec).pid != orphan.pid
    manager.stop(spec)
    assert ours(tmp_path) == []


def test_reconfigure_stops_and_rewrites(
    manager: SupervisorManager, make_spec: Callable[..., ServiceSpec], tmp_path: Path
) -> None:
    spec = make_spec()
    with pytest.raises(ServiceError, match="Reconfigure requested for service"):
        manager.reconfigure(spec)
    with pytest.raises(ServiceError, match="Start requested for service"):
        manager.start(spec)
    manager.install(spec)
    manager.start(spec)
    changed = make_spec("ignore-term", {"stop_grace": 2.0})
    manager.reconfigure(changed)
    assert manager.status(changed) is ServiceStatus.STOPPED
    assert ours(tmp_path) == []
    written = manager.state_directory(changed).read_command()
    assert written.argv[-1] == "ignore-term" and written.policy.stop_grace == 2.0
    manager.install(spec)  # install over an installed service reconfigures it
    assert manager.state_directory(spec).read_command().argv[-1] == "sleep"


def test_bad_specs_name_the_field_and_change_nothing(tmp_path: Path) -> None:
    with pytest.raises(ServiceSpecError) as raised:
        ServiceSpec.create(
            instance="/",
            argv=["relative/python"],
            password="x",
            environment={"1BAD": "x"},
            restart={"backoff_initial": 5, "backoff_max": 1},
        )
    problems = raised.value.problems
    assert set(problems) == {"instance", "argv", "password", "environment", "restart"}
    assert "absolute path" in problems["argv"]
    assert "only used with username" in problems["password"]
    with pytest.raises(ServiceSpecError) as raised:
        ServiceSpec.create(argv=[sys.executable])
    assert raised.value.problems == {
        "config_path": "is required when instance is not given (an unnamed instance)"
    }

    manager = SupervisorManager(tmp_path / "state")
    missing = ServiceSpec.create(
        instance="x",
        argv=[str(tmp_path / "missing")],
        username="no-such-user-here",
        working_directory=tmp_path / "nowhere",
    )
    with pytest.raises(ServiceSpecError) as raised:
        manager.install(missing)
    assert set(raised.value.problems) == {"argv", "username", "working_directory"}
    assert not (tmp_path / "state").exists()


def test_password_is_masked_in_repr() -> None:
    spec = ServiceSpec.create(
        instance="x", argv=[sys.executable], username="svc", password="hunter2-secret"
    )
    assert "hunter2-secret" not in repr(spec) and "hunter2-secret" not in str(spec)
    assert "hunter2-secret" not in spec.model_dump_json()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_root_runs_the_agent_as_the_named_user(manager: SupervisorManager, tmp_path: Path) -> None:
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        pytest.skip("needs /usr/bin/python3, which the user nobody can run")
    spec = ServiceSpec.create(
        instance="as-nobody",
        argv=[python, "-c", "import time; time.sleep(60)", str(tmp_path)],
        username="nobody",
        restart=FAST,
    )
    manager.install(spec)
    manager.start(spec)
    assert agent_of(manager, spec).username() == "nobody"
    manager.stop(spec)
    assert ours(tmp_path) == []


def test_default_state_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TENTACLE_SERVICE_STATE_ROOT", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_root() == tmp_path / "xdg" / "tentacle-manager" / "services"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_root() == tmp_path / "home" / ".local/state/tentacle-manager/services"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_root() == Path("/var/lib/tentacle-manager/services")
    monkeypatch.setenv("TENTACLE_SERVICE_STATE_ROOT", str(tmp_path / "sandbox"))  # even as root
    assert default_state_root() == tmp_path / "sandbox"
    monkeypatch.setenv("TENTACLE_SERVICE_STATE_ROOT", "relative/ignored")
    assert default_state_root() == Path("/var/lib/tentacle-manager/services")


def test_prerequisites(tmp_path: Path) -> None:
    assert SupervisorManager(tmp_path / "a" / "b").check_prerequisites() == []
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    problems = SupervisorManager(locked / "services").check_prerequisites()
    if os.geteuid() == 0:
        assert problems == []  # root writes anywhere
    else:
        assert "is not writable" in problems[0].message


def test_state_directory_ignores_torn_records(tmp_path: Path) -> None:
    state = StateDirectory(tmp_path)
    state.supervisor_pid.write_text('{"pid": 12')
    assert state.read_pid(state.supervisor_pid) is None
    assert state.read_status() is None


def test_choose_manager_order_and_prefer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for program in ("systemctl", "sc.exe"):
        (fake_bin / program).write_text("#!/bin/sh\n")
        (fake_bin / program).chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    booted = tmp_path / "run-systemd-system"
    booted.mkdir()

    def runner(argv: Sequence[str]) -> Completed:
        return Completed(0)

    factories: dict[ManagerKind, Callable[[], ServiceManager]] = {
        ManagerKind.WINDOWS: lambda: WindowsServiceManager(runner, on_windows=False),
        ManagerKind.SYSTEMD: lambda: SystemdManager(
            runner, runtime_directory=tmp_path / "absent", sudo=False
        ),
        ManagerKind.SUPERVISOR: lambda: SupervisorManager(tmp_path / "state"),
    }
    assert choose_manager(factories=factories).name == "supervisor"
    assert choose_manager("Supervisor", factories).name == "supervisor"
    with pytest.raises(ServiceError, match="is not the init system"):
        choose_manager("systemd", factories)
    with pytest.raises(ServiceError, match="exists only on Windows"):
        choose_manager("windows", factories)
    with pytest.raises(ServiceError) as raised:
        choose_manager("launchd", factories)
    assert raised.value.message == "prefer: 'launchd' is not a service manager."
    assert raised.value.remedy == "Choose one of: systemd, windows, supervisor."

    factories[ManagerKind.SYSTEMD] = lambda: SystemdManager(
        runner, runtime_directory=booted, sudo=False
    )
    assert choose_manager(factories=factories).name == "systemd"
    factories[ManagerKind.WINDOWS] = lambda: WindowsServiceManager(
        runner, elevated=lambda: True, on_windows=True
    )
    assert choose_manager(factories=factories).name == "windows"


def test_choose_manager_here() -> None:
    """On this Linux machine Windows never applies, and whatever is chosen has no problems."""
    with pytest.raises(ServiceError, match="exists only on Windows"):
        choose_manager("windows")
    assert choose_manager().check_prerequisites() == []


def test_restart_budget_backs_off_and_limits_crash_loops() -> None:
    budget = RestartBudget(RestartPolicy())
    assert [budget.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert [budget.allows_restart(ran_for=0.5) for _ in range(6)] == [True] * 5 + [False]
    assert budget.recent_exits == 6
    steady = RestartBudget(RestartPolicy())
    steady.next_delay()
    steady.next_delay()
    assert steady.allows_restart(ran_for=60.0)  # a run as long as the window resets back-off
    assert steady.next_delay() == 1
