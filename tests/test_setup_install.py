"""The setup plan and its installer, for real on this machine: the answers' rules, the exact
masked script, an install under the user-mode supervisor to a running agent, and a failure in
the fourth command rolled back until the machine is exactly as it was."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tentacle_manager.contracts import ProblemsError
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import InstanceRegistry, select_instance
from tentacle_manager.setup.answers import Page, ProxyAnswers, ProxyMode, SetupAnswers, Style
from tentacle_manager.setup.install import (
    Event,
    Outcome,
    OutputLine,
    StepFinished,
    footprint_of,
    install,
)
from tentacle_manager.setup.plan import Step, plan_setup
from tests.support import kill_strays

THUMBPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
API_KEY = "API-SECRETKEY1234567890"
PROXY_PASSWORD = "pr0xy pass'word"


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandboxed machine: its own instance index, secrets and service state (inherited by
    every `tentacle` the installer starts)."""
    monkeypatch.setenv("TentacleMachineConfigurationHomeDirectory", str(tmp_path / "etc"))
    monkeypatch.setenv("TENTACLE_SECRET_STORE", "file")
    monkeypatch.setenv("TENTACLE_SERVICE_STATE_ROOT", str(tmp_path / "services"))
    (tmp_path / "etc").mkdir()
    return tmp_path


def answers_for(root: Path, **changes: object) -> SetupAnswers:
    fields: dict[str, object] = {
        "instance": "Web",
        "home": root / "Octopus Homes" / "Web",
        "app_dir": root / "Applications" / "Web",
        "server_thumbprint": THUMBPRINT.lower(),
        "listen_port": str(free_port()),
        "firewall_rule": False,
    }
    fields.update(changes)
    return SetupAnswers(**fields)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snapshot(root: Path) -> set[tuple[str, int]]:
    """Every path under root with its size (files), to compare a machine before and after."""
    found = set()
    for folder, directories, files in os.walk(root):
        for name in directories:
            found.add((str(Path(folder, name).relative_to(root)), -1))
        for name in files:
            path = Path(folder, name)
            found.add((str(path.relative_to(root)), path.stat().st_size))
    return found


def test_each_page_names_its_bad_fields_with_the_rule(tmp_path: Path) -> None:
    answers = answers_for(
        tmp_path,
        instance="-bad",
        home=Path("relative/home"),
        listen_port="70000",
        server_thumbprint="API-ABCDEF",
    )
    assert set(answers.problems(Page.COMMUNICATION)) == {"instance"}
    assert answers.problems(Page.STORAGE) == {"home": "must be an absolute folder path"}
    listening = answers.problems(Page.LISTENING)
    assert "from 1 to 65535" in listening["listen_port"]
    assert "API key, not an Octopus Server certificate thumbprint" in listening["server_thumbprint"]
    with pytest.raises(ProblemsError) as raised:
        answers.check()
    assert set(raised.value.problems) == {"instance", "home", "listen_port", "server_thumbprint"}

    short = answers_for(tmp_path, server_thumbprint="[" * 40)  # Tentacle's [A-z] would take it
    assert "40 hexadecimal" in short.problems(Page.LISTENING)["server_thumbprint"]
    polling = answers_for(
        tmp_path,
        style=Style.POLLING,
        server_url="octopus.example.com",
        server_comms_port="0",
        api_key="not-a-key",
        proxy=ProxyAnswers(ProxyMode.CUSTOM, host="", port="x", password="p"),
    )
    assert set(polling.problems(Page.POLLING)) == {
        "server_url",
        "server_comms_port",
        "api_key",
        "proxy_host",
        "proxy_port",
        "proxy_username",
    }
    with pytest.raises(ProblemsError):
        plan_setup(answers, "supervisor", admin=False)  # nothing is planned from bad answers


def test_the_script_shows_every_command_with_secrets_masked(tmp_path: Path) -> None:
    answers = answers_for(
        tmp_path,
        style=Style.POLLING,
        server_url="https://octopus.example.com",
        api_key=API_KEY,
        proxy=ProxyAnswers(ProxyMode.CUSTOM, "proxy.local", "3128", "me", PROXY_PASSWORD),
        home=Path("/srv/octopus/Web"),
        app_dir=Path("/srv/apps/Web"),
    )
    plan = plan_setup(answers, "supervisor", admin=False)
    assert plan.script().splitlines() == [
        "tentacle create-instance --instance Web --config /srv/octopus/Web/Tentacle-Web.config "
        "--home /srv/octopus/Web",
        "tentacle new-certificate --instance Web --if-blank",
        "tentacle configure --instance Web --reset-trust",
        "tentacle configure --instance Web --app /srv/apps/Web --port "
        f"{answers.listen_port} --noListen True",
        "tentacle polling-proxy --instance Web --proxyEnable True --proxyHost proxy.local "
        "--proxyPort 3128 --proxyUsername me --proxyPassword '********'",
        "tentacle register-with --instance Web --server https://octopus.example.com --name Web "
        "--comms-style TentacleActive --server-comms-port 10943 --apiKey '********'",
        "tentacle service --instance Web --install --stop --start --manager supervisor",
    ]
    assert API_KEY not in plan.script() and PROXY_PASSWORD not in plan.script()
    commands = [" ".join(step.command()) for step in plan.steps]
    assert any(API_KEY in command for command in commands)  # the clear text goes to the process
    assert "only listens" in plan.unsupported  # polling cannot be installed by this agent
    assert "user-mode supervisor" in plan.notes[0]


def run_install(plan, footprint) -> tuple[object, list[Event]]:
    events: list[Event] = []
    result = asyncio.run(install(plan, events.append, footprint))
    return result, events


@pytest.mark.slow
def test_install_runs_the_agent_and_a_failing_fourth_command_leaves_no_trace(
    machine: Path,
) -> None:
    answers = answers_for(machine)
    plan = plan_setup(answers, "supervisor", admin=False)
    before = snapshot(machine)
    broken = list(plan.steps)
    assert broken[3].title == "Set the folders and how to listen"
    broken[3] = Step(broken[3].title, ("configure", "--instance", "Web", "--port", "70000"))
    failing = type(plan)(plan.answers, tuple(broken), plan.notes)
    result, events = run_install(failing, footprint_of(failing, machine / "etc"))
    assert result.outcome is Outcome.FAILED and result.failed_step == 3, events
    assert result.not_undone == ()
    lines = [event.text for event in events if isinstance(event, OutputLine)]
    assert any("--port: '70000'" in line or "70000" in line for line in lines)
    assert lines[-1] == "Rolled back: this machine is as it was before the installation."
    assert snapshot(machine) == before
    assert InstanceRegistry().list_instances() == []

    try:
        result, events = run_install(plan, footprint_of(plan, machine / "etc"))
        assert result.outcome is Outcome.SUCCEEDED, [getattr(e, "text", e) for e in events]
        finished = [event for event in events if isinstance(event, StepFinished)]
        assert [event.exit_code for event in finished] == [0] * len(plan.steps)
        instance = Instance(select_instance(InstanceRegistry(), instance="Web"))
        config = instance.config()
        assert config.trusted_servers[0].thumbprint == THUMBPRINT
        assert str(config.port) == answers.listen_port
        assert instance.identity() is not None
        status = tentacle("service", "--instance=Web", "--status", "--manager=supervisor")
        assert "running" in status.stdout.lower(), status.stdout
    finally:
        tentacle("service", "--instance=Web", "--stop", "--uninstall", "--manager=supervisor")
        kill_strays(answers.home)


def tentacle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tentacle_manager.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_streamed_output_masks_secrets_on_both_streams(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, style=Style.POLLING, api_key=API_KEY)
    echo = Step(
        "Echo the key",
        ("sh", "-c", f"echo key is {API_KEY}; echo also {API_KEY} >&2"),
        answers.secrets,
        is_tentacle=False,
    )
    plan = plan_setup(answers_for(tmp_path), "supervisor", admin=False)
    plan = type(plan)(answers, (echo,), ())
    result, events = run_install(plan, footprint_of(plan, tmp_path / "etc"))
    assert result.outcome is Outcome.SUCCEEDED
    lines = [event for event in events if isinstance(event, OutputLine)]
    assert all(API_KEY not in line.text for line in lines)
    texts = {(line.text, line.error) for line in lines}
    assert {("key is ********", False), ("also ********", True)} <= texts
