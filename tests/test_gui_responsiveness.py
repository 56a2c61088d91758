"""The app stays responsive under load: it refreshes for 60 s against a real agent process
running 50 scripts that print heavily, and its event loop is never blocked for long."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tentacle_manager.client.local import local_agent
from tentacle_manager.client.protocol import AgentUnavailableError
from tentacle_manager.contracts import ScriptIsolationLevel, StartScriptCommand, ticket
from tentacle_manager.instances.instance import Instance
from tests.gui_support import Sandbox, sandbox  # noqa: F401 (fixture)
from tests.support import kill_strays

pytestmark = pytest.mark.slow
SECONDS = 60
SCRIPTS = 50
# About 1,000 lines a second each, from one long-lived process per script.
PRINTER = """python3 -u - <<'PRINTER'
import time
while True:
    print("\\n".join(f"deploying file {i}: copying package contents" for i in range(100)))
    time.sleep(0.1)
PRINTER
"""


def test_sixty_seconds_against_fifty_chatty_scripts(sandbox: Sandbox) -> None:  # noqa: F811
    instance = sandbox.create_instance("Tentacle")
    agent = subprocess.Popen(
        [sys.executable, "-m", "tentacle_manager.cli.main", "agent", "--instance=Tentacle"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        asyncio.run(_start_scripts(instance))
        app = subprocess.run(
            [
                sys.executable,
                "-m",
                "tentacle_manager.gui",
                "--instance=Tentacle",
                f"--measure-lag={SECONDS}",
            ],
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
            capture_output=True,
            text=True,
            timeout=SECONDS + 60,
        )
        assert app.returncode == 0, app.stderr[-2000:]
        figures = re.search(r"max ([\d.]+) ms, p99 ([\d.]+) ms", app.stdout)
        assert figures, app.stdout
        worst, p99 = float(figures[1]), float(figures[2])
        print(app.stdout.strip())
        assert worst <= 50 and p99 <= 20, app.stdout
    finally:
        agent.terminate()
        agent.wait(30)
        kill_strays(Path(str(instance.config().home)))


async def _start_scripts(instance: Instance) -> None:
    async with local_agent(instance) as client:
        for _ in range(100):
            try:
                await client.health()
                break
            except AgentUnavailableError:  # still starting
                await asyncio.sleep(0.1)
        for number in range(SCRIPTS):
            await client.start_script(
                StartScriptCommand(
                    script_ticket=ticket(f"chatty-{number}"),
                    task_id=f"ServerTasks-chatty-{number}",
                    script_body=PRINTER,
                    isolation=ScriptIsolationLevel.NO_ISOLATION,
                    isolation_mutex_name=f"chatty-{number}",
                )
            )
