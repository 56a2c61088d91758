"""The systemd manager: exact unit text, exact systemctl commands (recorded, not run), real unit
files in a temporary directory, and `systemd-analyze verify` on what we write."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tentacle_manager.platform.services import (
    ServiceError,
    ServiceSpec,
    ServiceSpecError,
    ServiceStatus,
    SystemdManager,
)
from tentacle_manager.platform.services.spec import Completed
from tentacle_manager.platform.services.systemd import (
    ELEVATION_MESSAGE,
    NO_SYSTEMD_MESSAGE,
    quote_word,
    render_unit,
)

PYTHON = "/usr/bin/python3"
AGENT = [PYTHON, "-m", "tentacle_manager.cli.main", "agent"]


class Recorder:
    """A runner that records each command and answers from a table (success by default)."""

    def __init__(self, answers: dict[tuple[str, ...], Completed] | None = None):
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.commands.append(list(argv))
        return self.answers.get(tuple(argv), Completed(0))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def units(tmp_path: Path) -> Path:
    directory = tmp_path / "units"
    directory.mkdir()
    return directory


@pytest.fixture
def manager(recorder: Recorder, units: Path) -> SystemdManager:
    return SystemdManager(recorder, unit_directory=units, sudo=False)


@pytest.fixture
def umask_077() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def spec_for(instance: str | None = "X", **fields: Any) -> ServiceSpec:
    argv = [*AGENT, f"--instance={instance}", "--noninteractive"]
    return ServiceSpec.create(**{"instance": instance, "argv": argv, **fields})


EXPECTED_X = """\
[Unit]
Description=Octopus Deploy: Tentacle deployment agent
After=network.target

[Service]
Type=simple
User=root
ExecStart=/usr/bin/python3 -m tentacle_manager.cli.main agent --instance=X --noninteractive
Restart=always
RestartSec=5
# KillMode=process: stopping or restarting the agent signals only the agent itself; its scripts \
keep running and the agent re-adopts them when it comes back.
KillMode=process

[Install]
WantedBy=multi-user.target
"""


def test_install_writes_the_exact_unit_0644_and_enables_it(
    manager: SystemdManager, recorder: Recorder, units: Path, umask_077: None
) -> None:
    manager.install(spec_for("X"))
    unit = units / "X.service"
    assert unit.read_text() == EXPECTED_X
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert recorder.commands == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "X.service"],
    ]
    assert [path.name for path in units.iterdir()] == ["X.service"]  # no temp file left


def test_user_dependency_and_password(
    manager: SystemdManager, units: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    manager.install(
        spec_for("X", username="svc", password="hunter2-secret", depend_on="postgresql")
    )
    text = (units / "X.service").read_text()
    assert "\nUser=svc\n" in text
    assert "\nAfter=network.target postgresql.service\n" in text
    assert "hunter2-secret" not in text + caplog.text


def test_unit_names_follow_tentacle(manager: SystemdManager) -> None:
    unnamed = ServiceSpec.create(
        config_path="/etc/octopus/100%/tentacle.config",
        argv=[*AGENT, "--config=/etc/octopus/100%/tentacle.config"],
    )
    assert unnamed.service_name == "OctopusDeploy Tentacle"
    assert manager.unit_path(unnamed).name == "OctopusDeploy-Tentacle.service"
    assert "agent --config=/etc/octopus/100%%/tentacle.config\n" in render_unit(unnamed)
    assert manager.unit_path(spec_for("Tentacle")).name == "Tentacle.service"
    assert spec_for("Tentacle").service_name == "OctopusDeploy Tentacle"
    assert spec_for("a/b  c   d").unit_name == "ab-c-d"
    assert spec_for("My Inst").service_name == "OctopusDeploy Tentacle: My Inst"


def test_exec_start_quoting() -> None:
    spec = ServiceSpec.create(
        instance="My Inst",
        argv=["/opt/my agent/run", "--instance=My Inst", "100%", "$HOME", 'say "hi"', "a\\b", ";"],
        environment={"GREETING": "hello world", "RATE": "5%"},
        working_directory="/srv/agent 1",
    )
    text = render_unit(spec)
    exec_start = (
        'ExecStart="/opt/my agent/run" "--instance=My Inst" 100%% "$$HOME" '
        '"say \\"hi\\"" "a\\\\b" ";"'
    )
    assert f"\n{exec_start}\n" in text
    assert '\nEnvironment="GREETING=hello world"\nEnvironment=RATE=5%%\n' in text
    assert "\nWorkingDirectory=/srv/agent 1\n" in text
    assert quote_word("") == '""'
    assert quote_word("tab\there") == '"tab\\there"'
    assert quote_word("bell\x07") == '"bell\\x07"'


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is missing")
def test_systemd_analyze_verifies_the_generated_unit(
    manager: SystemdManager, units: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "agent dir 100%n"  # '%n' would expand to the unit name if not escaped
    folder.mkdir()
    executable = folder / "agent"
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    spec = ServiceSpec.create(
        instance="My Inst",
        argv=[str(executable), "--instance=My Inst", "50%", "$HOME", 'quote " and \\ bs', ";"],
        environment={"A": "b c %d"},
        working_directory=folder,
        username="svc",
        depend_on="network-online.target",
    )
    manager.install(spec)
    unit = units / "My-Inst.service"
    verified = verify(unit)
    assert verified.returncode == 0, verified.stderr

    broken = tmp_path / "broken" / unit.name  # the same unit with '%' left unescaped
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("%%", "%"))
    assert verify(broken).returncode != 0


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_reconfigure_stops_disables_rewrites_and_enables(
    manager: SystemdManager, recorder: Recorder, units: Path
) -> None:
    with pytest.raises(ServiceError, match="Reconfigure requested for service"):
        manager.reconfigure(spec_for("X"))
    assert recorder.commands == []
    manager.install(spec_for("X"))
    recorder.commands.clear()
    manager.reconfigure(spec_for("X", username="svc"))
    assert recorder.commands == [
        ["systemctl", "stop", "X.service"],
        ["systemctl", "disable", "X.service"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "X.service"],
    ]
    assert "\nUser=svc\n" in (units / "X.service").read_text()
    recorder.commands.clear()
    manager.install(spec_for("X"))  # install over an installed unit reconfigures it
    assert recorder.commands[0] == ["systemctl", "stop", "X.service"]
    assert (units / "X.service").read_text() == EXPECTED_X


def test_uninstall_stops_disables_and_deletes(
    manager: SystemdManager, recorder: Recorder, units: Path
) -> None:
    manager.uninstall(spec_for("X"))
    assert recorder.commands == []
    manager.install(spec_for("X"))
    recorder.commands.clear()
    manager.uninstall(spec_for("X"))
    assert recorder.commands == [
        ["systemctl", "stop", "X.service"],
        ["systemctl", "disable", "X.service"],
        ["systemctl", "daemon-reload"],
    ]
    assert list(units.iterdir()) == []


def test_start_stop_restart(manager: SystemdManager, recorder: Recorder) -> None:
    with pytest.raises(ServiceError) as raised:
        manager.start(spec_for("X"))
    assert raised.value.message == (
        "Start requested for service OctopusDeploy Tentacle: X, but no service with this name "
        "was found."
    )
    manager.stop(spec_for("X"))
    assert recorder.commands == []
    manager.install(spec_for("X"))
    recorder.commands.clear()
    manager.start(spec_for("X"))
    manager.stop(spec_for("X"))
    manager.restart(spec_for("X"))
    assert recorder.commands == [
        ["systemctl", "start", "X.service"],
        ["systemctl", "stop", "X.service"],
        ["systemctl", "stop", "X.service"],
        ["systemctl", "start", "X.service"],
    ]


def test_a_failed_start_raises_unlike_tentacle(units: Path) -> None:
    failing = Recorder(
        {("systemctl", "start", "X.service"): Completed(1, "", "Job for X.service failed.")}
    )
    manager = SystemdManager(failing, unit_directory=units, sudo=False)
    manager.install(spec_for("X"))
    with pytest.raises(ServiceError) as raised:
        manager.start(spec_for("X"))
    assert "exit code 1: Job for X.service failed." in raised.value.message
    assert raised.value.remedy == "See `journalctl -u X.service` for the agent's output."


def test_a_failed_enable_puts_the_previous_unit_back(units: Path) -> None:
    denied = Completed(1, "", "Failed to enable unit: Access denied")
    failing = Recorder({("systemctl", "enable", "X.service"): denied})
    manager = SystemdManager(failing, unit_directory=units, sudo=False)
    with pytest.raises(ServiceError) as raised:
        manager.install(spec_for("X"))
    assert raised.value.remedy == ELEVATION_MESSAGE
    assert list(units.iterdir()) == []  # the new unit is removed again
    assert failing.commands[-1] == ["systemctl", "daemon-reload"]

    (units / "X.service").write_text("previous unit\n")
    with pytest.raises(ServiceError):
        manager.reconfigure(spec_for("X"))
    assert (units / "X.service").read_text() == "previous unit\n"


def test_status_from_systemctl_show(units: Path) -> None:
    command = ("systemctl", "show", "-p", "ActiveState,LoadState", "X.service")
    cases = {
        "ActiveState=inactive\nLoadState=not-found\n": ServiceStatus.NOT_INSTALLED,
        "LoadState=loaded\nActiveState=active\n": ServiceStatus.RUNNING,
        "ActiveState=activating\nLoadState=loaded\n": ServiceStatus.STARTING,
        "ActiveState=deactivating\nLoadState=loaded\n": ServiceStatus.STOPPING,
        "ActiveState=inactive\nLoadState=loaded\n": ServiceStatus.STOPPED,
        "ActiveState=failed\nLoadState=loaded\n": ServiceStatus.FAILED,
    }
    for output, expected in cases.items():
        runner = Recorder({command: Completed(0, output)})
        status = SystemdManager(runner, unit_directory=units, sudo=False).status(spec_for("X"))
        assert status is expected, output
        assert runner.commands == [list(command)]
    odd = Recorder({command: Completed(0, "ActiveState=sleeping\nLoadState=loaded\n")})
    with pytest.raises(ServiceError, match="ActiveState='sleeping'"):
        SystemdManager(odd, unit_directory=units, sudo=False).status(spec_for("X"))


def test_sudo_prefixes_every_command(recorder: Recorder, units: Path) -> None:
    manager = SystemdManager(recorder, unit_directory=units, sudo=True)
    manager.install(spec_for("X"))
    staged, temp = recorder.commands[0][5:7]
    assert recorder.commands[0][:5] == ["sudo", "-n", "install", "-m", "644"]
    assert re.fullmatch(r".*/tentacle-unit-[^/]+/X\.service", staged)
    assert temp == str(units / ".X.service.tmp")
    assert recorder.commands[1:] == [
        ["sudo", "-n", "mv", "-f", temp, str(units / "X.service")],
        ["sudo", "-n", "systemctl", "daemon-reload"],
        ["sudo", "-n", "systemctl", "enable", "X.service"],
    ]
    assert not Path(staged).exists()  # the staging copy is cleaned up


def test_bad_specs_are_refused_before_anything_changes(
    manager: SystemdManager, recorder: Recorder, units: Path
) -> None:
    with pytest.raises(ServiceSpecError) as raised:
        manager.install(
            ServiceSpec.create(
                instance="web%1",
                argv=["C:\\Octopus\\Tentacle.exe"],
                username="bad user",
                depend_on="two words",
            )
        )
    assert set(raised.value.problems) == {"instance", "argv", "username", "depend_on"}
    assert "'web%1'" in raised.value.problems["instance"]
    assert recorder.commands == [] and list(units.iterdir()) == []
    with pytest.raises(ServiceSpecError) as raised:
        ServiceSpec.create(instance="X", argv=[PYTHON], description="two\nlines")
    assert raised.value.problems == {
        "description": "must not contain control characters such as newlines or tabs"
    }


def test_prerequisites(
    recorder: Recorder, units: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = tmp_path / "run-systemd-system"
    running.mkdir()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "systemctl").write_text("#!/bin/sh\n")
    (fake_bin / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    ready = SystemdManager(recorder, unit_directory=units, runtime_directory=running, sudo=False)
    assert ready.check_prerequisites() == []

    booted_otherwise = SystemdManager(recorder, runtime_directory=tmp_path / "absent", sudo=False)
    [problem] = booted_otherwise.check_prerequisites()
    assert "is not the init system" in problem.message

    no_sudo = Recorder({("sudo", "-n", "true"): Completed(1, "", "a password is required")})
    [problem] = SystemdManager(no_sudo, runtime_directory=running, sudo=True).check_prerequisites()
    assert problem.message == ELEVATION_MESSAGE
    assert no_sudo.commands == [["sudo", "-n", "true"]]

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    [problem] = SystemdManager(
        recorder, runtime_directory=running, sudo=False
    ).check_prerequisites()
    assert problem.message == NO_SYSTEMD_MESSAGE
