"""Workspaces, bootstrap files, request files (encrypted or not) and shell command lines."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tentacle_manager.agent.process.shell import Bash, PowerShell
from tentacle_manager.agent.scripts.cleaner import clean_workspaces
from tentacle_manager.agent.workspace.script_files import (
    WorkspaceEscapeError,
    decrypt,
    encrypt,
    write_script_file,
)
from tentacle_manager.agent.workspace.state import ScriptState, StateStore
from tentacle_manager.agent.workspace.workspace import Workspace
from tentacle_manager.contracts import ProcessState, ScriptFile, StartScriptCommand, ticket, utc_now


def test_powershell_command_line_matches_tentacle():
    shell = PowerShell(executable=r"C:\Windows\System32\WindowsPowershell\v1.0\PowerShell.exe")
    line = shell.command_line(Path(r"C:\Octopus\Work\t1\Bootstrap.ps1"), ["-Name", "O'Brien"])
    assert line == [
        r"C:\Windows\System32\WindowsPowershell\v1.0\PowerShell.exe",
        "-NonInteractive",
        "-NoProfile",
        "-NoLogo",
        "-ExecutionPolicy",
        "Unrestricted",
        "-Command",
        "$ErrorActionPreference = 'Stop'; . {. 'C:\\Octopus\\Work\\t1\\Bootstrap.ps1' '-Name' "
        "'O''Brien'; if ((test-path variable:global:lastexitcode)) { exit $LastExitCode }}",
    ]


def test_powershell_arguments_with_typographic_quotes_stay_one_argument():
    """PowerShell ends a single-quoted string at U+2018..U+201B too: each is doubled."""
    left, right, low, high = "\u2018", "\u2019", "\u201a", "\u201b"
    shell = PowerShell(executable="PowerShell.exe")
    home = f"C:\\O{right}Brien{right}s\\Bootstrap.ps1"
    line = shell.command_line(Path(home), [f"it{right}s {left}x{right} {low}y{high}"])
    doubled_home = f"C:\\O{right * 2}Brien{right * 2}s\\Bootstrap.ps1"
    argument = f"it{right * 2}s {left * 2}x{right * 2} {low * 2}y{high * 2}"
    assert line[-1] == (
        f"$ErrorActionPreference = 'Stop'; . {{. '{doubled_home}' '{argument}'; "
        "if ((test-path variable:global:lastexitcode)) { exit $LastExitCode }}"
    )


def test_powershell_bootstrap_has_a_bom_and_uses_the_main_body():
    shell = PowerShell(executable="PowerShell.exe")
    command = StartScriptCommand(
        script_ticket=ticket("t"), script_body="Write-Host hi", scripts={1: "echo bash"}
    )
    assert shell.select_body(command) == "Write-Host hi"
    assert shell.bootstrap_bytes("x").startswith(b"\xef\xbb\xbf")


def test_powershell_is_located_under_system_root_or_found_on_path(tmp_path):
    assert PowerShell.locate({"SystemRoot": str(tmp_path)}).executable == "PowerShell.exe"


def test_bash_command_line_passes_arguments_unmangled():
    assert Bash(executable="/bin/bash").command_line(Path("/w/Bootstrap.sh"), ["a b", "$x"]) == [
        "/bin/bash",
        "/w/Bootstrap.sh",
        "a b",
        "$x",
    ]


def test_encrypted_files_use_tentacles_layout(tmp_path):
    data = encrypt(b"secret contents", "pw")
    assert data.startswith(b"IV__") and len(data) == 4 + 16 + 16
    assert decrypt(data, "pw") == b"secret contents"
    path = write_script_file(
        tmp_path, ScriptFile(name="a/b.txt", contents=b"x", encryption_password="pw")
    )
    assert decrypt(path.read_bytes(), "pw") == b"x"


def test_a_symlink_cannot_carry_a_file_out_of_the_workspace(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(WorkspaceEscapeError):
        write_script_file(root, ScriptFile(name="link/evil.txt", contents=b"x"))
    assert not (outside / "evil.txt").exists()


def test_prepare_wipes_a_half_prepared_folder(tmp_path):
    workspace = Workspace(tmp_path / "t")
    workspace.directory.mkdir()
    (workspace.directory / "leftover").write_text("from a killed agent")
    workspace.prepare(StartScriptCommand(script_ticket=ticket("t"), script_body="echo"), Bash())
    assert sorted(p.name for p in workspace.directory.iterdir()) == ["Bootstrap.sh"]


def make_finished(work: Path, name: str, age: float, state: ProcessState = ProcessState.COMPLETE):
    directory = work / name
    directory.mkdir(parents=True)
    record = ScriptState(created=utc_now(), ticket=name, state=state)
    if state is ProcessState.COMPLETE:
        record.mark_complete(0)
    StateStore(directory).save(record)
    (directory / "Output.log").write_text("")
    past = time.time() - age
    os.utime(directory / "Output.log", (past, past))
    return directory


def test_cleaner_removes_only_old_finished_idle_workspaces(tmp_path):
    work = tmp_path / "Work"
    old = make_finished(work, "old", 3 * 86400)
    young = make_finished(work, "young", 60)
    running = make_finished(work, "running", 3 * 86400, ProcessState.RUNNING)
    busy = make_finished(work, "busy", 3 * 86400)
    foreign = work / "foreign"
    foreign.mkdir()
    deleted = clean_workspaces(work, 86400, in_use=lambda name: name == "busy")
    assert deleted == 1
    assert not old.exists()
    assert young.exists() and running.exists() and busy.exists() and foreign.exists()
