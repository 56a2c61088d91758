"""`tentacle antivirus` (alias `av-advisor`), run as a real program over a temporary home and
a machine-config home of its own, in text and in JSON, and with each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tentacle_manager.instances.registry import (
    HOME_OVERRIDE_VARIABLE,
    InstanceRegistry,
    create_instance,
)
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE as SECRET_STORE_VARIABLE

PROGRAM = [sys.executable, "-m", "tentacle_manager.cli.main"]


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        HOME_OVERRIDE_VARIABLE: str(tmp_path / "machine"),
        SECRET_STORE_VARIABLE: "file",
    }


def tentacle(tmp_path: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at the same time (each pays for the interpreter's start)."""
    started = [
        subprocess.Popen(
            [*PROGRAM, *command],
            env=environment(tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    results = []
    for command, process in zip(commands, started, strict=True):
        out, err = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def a_home(tmp_path: Path) -> Path:
    home = tmp_path / "Octopus Home's"
    for folder in ("Work", "Tools", "Files", "Logs"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    return home


def test_the_text_report_measures_and_writes_the_artefacts(tmp_path: Path) -> None:
    home = a_home(tmp_path)
    out = tmp_path / "for the security team"
    command = ["antivirus", "--home", str(home), "--measure", "--canary-scripts=20"]
    (done,) = tentacle(tmp_path, [*command, "--write-scripts", str(out)])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == f"Anti-virus exclusion advice for the Tentacle home {home}"
    assert f"  1. folder {home / 'Tools'} (with sub-directories), priority 1" in lines
    assert f"  2. folder {home / 'Work'} (with sub-directories), priority 1" in lines
    assert f"  4. folder {home / 'Logs'} (with sub-directories), priority 2" in lines
    assert "Process exclusions, as Microsoft documents them:" in lines
    assert any(line.startswith("Canary: Work ") for line in lines)
    assert lines[-3:] == [
        "Written:",
        f"  {out / 'clamd-exclusions.conf'}",
        f"  {out / 'exclusion-request.md'}",
    ]
    assert (
        (out / "exclusion-request.md")
        .read_text()
        .startswith("# Anti-virus exclusion request: Tentacle agent on ")
    )
    assert list((home / "Work").iterdir()) == []  # the canary cleaned up after itself


def test_json_for_an_instance_shows_the_coverage_from_its_clamd_conf(tmp_path: Path) -> None:
    home = a_home(tmp_path)
    registry = InstanceRegistry(tmp_path / "machine")
    create_instance(registry, instance="Edge", config=home / "Edge.config", home=home)
    conf = tmp_path / "clamd.conf"
    conf.write_text(f"OnAccessIncludePath /\nOnAccessExcludePath {home / 'Work'}\n")
    (done,) = tentacle(
        tmp_path,
        ["av-advisor", "--instance", "Edge", "--format", "json", "--clamd-conf", str(conf)],
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["Home"] == str(home)
    assert report["AgentAccount"] is not None  # the owner of Work
    assert [r["Path"] for r in report["Recommendations"][:4]] == [
        str(home / name) for name in ("Tools", "Work", "Files", "Logs")
    ]
    assert [r["Target"] for r in report["Recommendations"][4:]] == ["process", "process"]
    clam = next(p for p in report["Products"] if p["Key"] == "clamav")
    assert {
        "Kind": "config",
        "Detail": f"{conf}: on-access scanning watches OnAccessIncludePath / (line 1)",
    } in clam["Evidence"]
    states = [c["State"] for c in clam["Coverage"]]
    assert states[:4] == ["not set", "set", "not set", "not set"]
    assert clam["Coverage"][1]["Detail"] == (
        f"OnAccessExcludePath {home / 'Work'} ({conf}:2). clamd's own scans (clamdscan) do not "
        "skip it: no ExcludePath matches."
    )
    assert report["Measurement"] is None and report["Written"] == []
    assert len(report["ProcessCaveats"]) == 7


def test_bad_input_fails_in_one_line_that_names_the_option_and_the_rule(tmp_path: Path) -> None:
    home = a_home(tmp_path)
    bad_conf = tmp_path / "bad.conf"
    bad_conf.write_text("# two mistakes\nLogFile\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    no_work = tmp_path / "no-work"
    no_work.mkdir()
    results = tentacle(
        tmp_path,
        ["antivirus", "--home", str(tmp_path / "missing")],
        ["antivirus", "--home", str(home), "--clamd-conf", str(bad_conf)],
        ["antivirus", "--home", str(home), "--clamd-conf", str(tmp_path)],
        ["antivirus", "--home", str(home), "--measure", "--canary-scripts", "0"],
        ["antivirus", "--home", str(home), "--write-scripts", str(a_file)],
        ["antivirus", "--home", str(no_work), "--measure"],
        ["antivirus"],
    )
    messages = [(r.returncode, r.stdout, r.stderr.strip()) for r in results]
    assert messages[:6] == [
        (1, "", f"--home: {tmp_path / 'missing'} is not a folder. Give the Tentacle home (the "
                "folder that holds Work, Logs, Tools and Files)."),
        (1, "", f"--clamd-conf: {bad_conf}:2: option LogFile has no value"),
        (1, "", f"--clamd-conf: {tmp_path}: cannot be read: Is a directory."),
        (1, "", "Argument --canary-scripts: must be between 1 and 10000, not 0. See 'tentacle "
                "antivirus --help'."),
        (1, "", f"--write-scripts: {a_file}: cannot be written: File exists. Choose a folder "
                "you can write to."),
        (1, "", f"--measure: home: {no_work / 'Work'} is not a folder: give a Tentacle home "
                "that has a Work folder"),
    ]  # fmt: skip
    no_instance = results[6]
    assert no_instance.returncode == 1 and len(no_instance.stderr.strip().splitlines()) == 1
    assert "Traceback" not in no_instance.stderr
