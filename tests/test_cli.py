"""The command line, run as a real program."""

from __future__ import annotations

import subprocess
import sys


def tentacle(*args: str, home) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tentacle_manager.cli.main", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_script_demo_prints_output_and_exits_zero(tmp_path):
    result = tentacle("run-script", "--demo", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hello from the Tentacle Manager script service." in result.stdout
    assert "step 3 of 3" in result.stdout
    assert "exit code 0" in result.stderr
    assert list((tmp_path / "Work").iterdir()) == []  # completed, workspace deleted


def test_run_script_failing_body_exits_one(tmp_path):
    result = tentacle("run-script", "--body", "echo nope >&2; exit 3", home=tmp_path)
    assert result.returncode == 1
    assert "nope" in result.stderr and "exit code 3" in result.stderr


def test_unreadable_file_names_the_option(tmp_path):
    result = tentacle("run-script", "--file", str(tmp_path / "missing.sh"), home=tmp_path)
    assert result.returncode == 1  # a controlled failure: one line, the option named
    assert "--file" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
