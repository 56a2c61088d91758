"""`check-connectivity`, `fire-drill` and `support-bundle` as a user runs them, against the
instance's real agent on this test's loop (the command runs in a worker thread, with its own
loop, as it would in its own process)."""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tentacle_manager.cli.main import main as tentacle
from tentacle_manager.instances.instance import Instance
from tests.api_support import Pki
from tests.gui_support import InProcessAgent, Sandbox, sandbox  # noqa: F401 (fixture)
from tests.network_support import https_server
from tests.support import fast_settings, kill_strays

NAME = "Troubled"


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(tentacle, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def instance(sandbox: Sandbox) -> Instance:  # noqa: F811
    return sandbox.create_instance(NAME)


@pytest.fixture
async def agent(instance: Instance, sandbox: Sandbox) -> AsyncIterator[InProcessAgent]:  # noqa: F811
    running = InProcessAgent(instance, fast_settings())
    await running.start()
    yield running
    await running.stop()
    kill_strays(sandbox.root)


async def test_check_connectivity_prints_each_stage_and_passes(
    agent: InProcessAgent, instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(capsys, "check-connectivity", f"--instance={NAME}")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    port = instance.config().port
    assert [line[:6] for line in lines[:5]] == ["PASS  "] * 5
    assert lines[0].startswith("PASS  Resolve 127.0.0.1 ")
    assert lines[3].startswith("PASS  Compare the agent's certificate with the expected thumbprint")
    assert lines[-1] == f"Connectivity to https://127.0.0.1:{port}: every check passed."


async def test_check_connectivity_as_json(
    agent: InProcessAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await run(capsys, "check-connectivity", f"--instance={NAME}", "--format=json")
    report = json.loads(out)
    assert code == 0 and report["passed"] is True
    assert [s["stage"] for s in report["stages"]] == [
        "resolve",
        "connect",
        "handshake",
        "thumbprint",
        "health",
    ]


async def test_check_connectivity_to_a_stopped_agent_fails_with_the_cause_and_remedy(
    instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    port = instance.config().port
    code, out, err = await run(capsys, "check-connectivity", f"--instance={NAME}")
    assert code == 1
    assert err == (
        f"Connect to 127.0.0.1:{port}: nothing is listening on 127.0.0.1:{port} (connection "
        f"refused). Check that the agent is running and listens on port {port}, and that no "
        "firewall rejects the connection.\n"
    )
    lines = out.splitlines()
    assert lines[1].startswith(f"FAIL  Connect to 127.0.0.1:{port} ")
    assert lines[2].startswith("      Remedy: Check that the agent is running")
    assert [line[:4] for line in lines[3:]] == ["SKIP"] * 3


async def test_check_connectivity_to_a_server_pins_the_thumbprint(
    instance: Instance,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the default polling proxy is the system's
    async with https_server(pki.server, tmp_path) as port:
        url = f"https://127.0.0.1:{port}"
        good = await run(
            capsys,
            "check-connectivity",
            f"--instance={NAME}",
            f"--server-url={url}",
            f"--thumbprint={pki.server.thumbprint}",
        )
        bad = await run(
            capsys,
            "check-connectivity",
            "--proxy=none",
            f"--server-url={url}",
            f"--thumbprint={pki.stranger.thumbprint}",
        )
    assert good[0] == 0, good
    assert good[1].splitlines()[-1] == f"Connectivity to {url}: every check passed."
    assert bad[0] == 1
    assert bad[2].startswith(
        f"Pin the server's certificate thumbprint: the certificate presented has thumbprint "
        f"{pki.server.thumbprint}, expected {pki.stranger.thumbprint}. "
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--server-url=http://octopus:10943",
            "--server-url: must be an https:// URL such as https://octopus.example:10943 "
            "(got 'http://octopus:10943').",
        ),
        (
            "--timeout=abc",
            "--timeout: must be a number of seconds above 0 and at most 3600, not 'abc'.",
        ),
        (
            "--timeout=0",
            "--timeout: must be a number of seconds above 0 and at most 3600, not '0'.",
        ),
    ],
)
async def test_check_connectivity_options_are_checked(
    instance: Instance, option: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(capsys, "check-connectivity", f"--instance={NAME}", option) == (
        1,
        "",
        message + "\n",
    )


async def test_server_options_are_checked(
    instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "--server-url=https://octopus.example:10943"
    assert (await run(capsys, "check-connectivity", url, "--proxy=socks"))[2] == (
        "--proxy: must be polling, web or none, not 'socks'.\n"
    )
    code, _, err = await run(capsys, "check-connectivity", url, "--thumbprint=xyz")
    assert code == 1
    assert err.startswith("--thumbprint: Thumbprint 'xyz' is not valid: it must be 40 hex")


async def test_fire_drill_grades_every_rung_and_gives_the_verdict(
    agent: InProcessAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run(capsys, "fire-drill", f"--instance={NAME}")
    assert (code, err) == (0, ""), out
    rungs = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL", "SKIP"))]
    assert [line.split("  ")[1].strip() for line in rungs] == [
        "Drill script started its grandchildren and wrote its files",
        "Signal delivered",
        "Process tree killed",
        "Output released: the script reached its final state",
        "Workspace deleted on complete",
        "Isolation mutex freed",
    ]
    assert all(line.startswith("PASS") for line in rungs)
    assert "      The script received SIGINT " in out
    assert re.search(
        r"^Cancel works on this machine: .* stopped \d+\.\d s after the cancel \(SIGINT, "
        r"SIGTERM 1\.\d+ s later, SIGKILL 1\.\d+ s later\)",
        out.splitlines()[-1],
    )


async def test_fire_drill_as_json(
    agent: InProcessAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await run(capsys, "fire-drill", f"--instance={NAME}", "--format=json")
    report = json.loads(out)
    assert code == 0 and report["passed"] is True
    assert [rung["Signal"] for rung in report["ladder"]] == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert len(report["rungs"]) == 6


async def test_support_bundle_writes_the_zip_and_attaches_reports(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "prerequisites.json"
    report.write_text('{"checks": []}')
    output = tmp_path / "support.zip"
    code, out, err = await run(
        capsys,
        "support-bundle",
        f"--instance={NAME}",
        f"--output={output}",
        "--days=3",
        f"--attach={report}",
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith("logs: 1 file(s), ")
    assert "extra: prerequisites.json: 1 file(s), 14 bytes" in out
    assert out.splitlines()[-1].startswith(f"Support bundle written to {output} (")
    with zipfile.ZipFile(output) as archive:
        assert archive.read("extra/prerequisites.json") == b'{"checks": []}'
        assert json.loads(archive.read("manifest.json"))["days"] == 3


async def test_support_bundle_options_are_checked(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"")
    bundle = ["support-bundle", f"--instance={NAME}"]
    rule = "must be a whole number of days from 1 to 3650"
    cases = {
        (f"--output={tmp_path / 'b.zip'}", "--days=0"): f"--days: {rule}, not 0.",
        (f"--output={tmp_path / 'b.zip'}", "--days=week"): f"--days: {rule}, not 'week'.",
        (f"--output={taken}",): (
            f"--output: {taken} already exists; choose another file or delete it first."
        ),
        (f"--output={tmp_path / 'b.zip'}", f"--attach={tmp_path / 'none.txt'}"): (
            f"--attach: cannot read {tmp_path / 'none.txt'}: No such file or directory."
        ),
    }
    for options, message in cases.items():
        assert await run(capsys, *bundle, *options) == (1, "", message + "\n")
    assert not (tmp_path / "b.zip").exists()
