"""The whole product on this machine, for real: create an instance, make certificates, trust a
client, install and start the agent under the user-mode supervisor, run scripts over mutual
TLS from the CLI and from the client library, cancel one, abandon one, restart the agent in
the middle of a script, and uninstall."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from tentacle_manager.client.agent_client import HttpsAgent
from tentacle_manager.client.executor import ScriptExecutor, ScriptOutcome
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.contracts import (
    ExitCode,
    ScriptStatusRequest,
    ticket,
)
from tentacle_manager.instances.certificates import generate_certificate
from tests.api_support import client_identity
from tests.support import start_command, wait_complete

pytestmark = pytest.mark.slow
INSTANCE = "EndToEnd"


class Machine:
    """A sandboxed machine: its own instance index, secret store and supervisor state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.env = {
            **os.environ,
            "TentacleMachineConfigurationHomeDirectory": str(root / "etc"),
            "TENTACLE_SECRET_STORE": "file",
            "TENTACLE_SERVICE_STATE_ROOT": str(root / "services"),
        }

    def tentacle(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tentacle_manager.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=self.root,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"tentacle {' '.join(args)} -> {result.returncode}\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    machine = Machine(tmp_path)
    yield machine
    machine.tentacle(
        "service",
        f"--instance={INSTANCE}",
        "--stop",
        "--uninstall",
        "--manager=supervisor",
        check=False,
    )
    for process in processes_of(machine):
        process.kill()


def processes_of(machine: Machine) -> list[psutil.Process]:
    """Every process started for this sandboxed machine: they inherit its environment."""
    mine = machine.env["TentacleMachineConfigurationHomeDirectory"]
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("TentacleMachineConfigurationHomeDirectory") == mine:
                found.append(process)
        except psutil.Error:
            continue
    return found


async def _agent_ready(agent: HttpsAgent) -> None:
    for _ in range(200):
        try:
            await agent.health()
            return
        except AgentUnavailableError:
            await asyncio.sleep(0.1)
    raise AssertionError("the agent did not come up")


async def test_install_run_cancel_abandon_restart_uninstall(machine: Machine) -> None:
    port = free_port()
    t = machine.tentacle
    t(
        "create-instance",
        f"--instance={INSTANCE}",
        f"--config={machine.root / 'e2e.config'}",
        f"--home={machine.home}",
    )
    t("new-certificate", f"--instance={INSTANCE}")
    agent_thumbprint = t("show-thumbprint", f"--instance={INSTANCE}").stdout
    orchestrator = generate_certificate()
    certificate_file = machine.root / "orchestrator.pem"
    certificate_file.write_bytes(orchestrator.certificate_pem())
    t(
        "configure",
        f"--instance={INSTANCE}",
        f"--trust={certificate_file}",
        f"--port={port}",
        "--listenIpAddress=127.0.0.1",
    )
    t("service", f"--instance={INSTANCE}", "--install", "--start", "--manager=supervisor")

    address = f"https://127.0.0.1:{port}"
    identity = client_identity(orchestrator, machine.root / "client", "orchestrator")
    async with HttpsAgent(address, identity, agent_thumbprint) as agent:
        await _agent_ready(agent)

        # from the CLI, with the instance's admin certificate
        ran = t("run-script", f"--instance={INSTANCE}", "--body", "echo hello-from-cli")
        assert "hello-from-cli" in ran.stdout

        # from the client library, as a remote orchestrator
        result = await ScriptExecutor(agent).run(
            start_command("lib-1", "echo hello-from-library"), asyncio.Event()
        )
        assert result.outcome is ScriptOutcome.SUCCEEDED
        assert "hello-from-library" in [r.text for r in result.logs]

        # cancel one from the CLI
        await agent.start_script(start_command("to-cancel", "sleep 60", mutex="cancel-me"))
        t("cancel", f"--instance={INSTANCE}", "--ticket=to-cancel")
        cancelled = await wait_complete(agent, "to-cancel", timeout=30)
        assert cancelled.exit_code != 0

        # abandon one that ignores the polite signals
        stubborn = "trap '' INT TERM; while true; do sleep 0.1; done"
        await agent.start_script(start_command("to-abandon", stubborn, mutex="abandon-me"))
        await asyncio.sleep(0.5)
        abandoned = t("abandon", f"--instance={INSTANCE}", "--ticket=to-abandon")
        assert "mutex is free" in abandoned.stdout
        status = await agent.get_status(ScriptStatusRequest(ticket=ticket("to-abandon")))
        assert status.exit_code == ExitCode.ABANDONED

        # restart the agent while a script runs: the script survives and is adopted
        marker = machine.root / "survived"
        await agent.start_script(
            start_command("across-restart", f"sleep 8; echo done > {marker}", wait=timedelta(0))
        )
        await asyncio.sleep(0.5)
        t("service", f"--instance={INSTANCE}", "--restart", "--manager=supervisor")
        await _agent_ready(agent)
        adopted = await wait_complete(agent, "across-restart", timeout=30)
        assert marker.read_text().strip() == "done"  # it ran to its end, once
        assert any("re-adopted" in record.text for record in adopted.logs), [
            r.text for r in adopted.logs
        ]
        # Its end is observed; its exit status went to the old agent (see test_restart.py).
        assert adopted.exit_code == ExitCode.UNKNOWN_RESULT

        listed = t("list-scripts", f"--instance={INSTANCE}", "--format=json")
        assert "across-restart" in listed.stdout
        assert "alive" in t("livez", f"--instance={INSTANCE}").stdout

        # a two-step task file against this agent, from the CLI
        task_file = machine.root / "deploy.toml"
        task_file.write_text(
            f'name = "Deploy"\n[agents.web]\nurl = "{address}"\n'
            f'thumbprint = "{agent_thumbprint}"\n'
            '[[steps]]\nname = "one"\nagents = ["web"]\nscript = "echo step-one"\n'
            '[[steps]]\nname = "two"\nagents = ["web"]\nscript = "echo step-two"\n'
        )
        task = t("run-task", f"--instance={INSTANCE}", str(task_file))
        assert "[one @ web] step-one" in task.stdout and "[two @ web] step-two" in task.stdout
        assert "Task Deploy: succeeded" in task.stderr

    t("service", f"--instance={INSTANCE}", "--stop", "--uninstall", "--manager=supervisor")
    status = t("service", f"--instance={INSTANCE}", "--status", "--manager=supervisor")
    assert "not-installed" in status.stdout
    assert [p.cmdline() for p in processes_of(machine)] == []
