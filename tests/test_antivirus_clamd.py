"""ClamAV: a real installation found by its package and config, clamd.conf read as ClamAV's own
clamconf reads it, and what a config says about the agent's folders.

scripts/ensure-clamav installs Debian's clamav-daemon when it is missing (about ten seconds);
where it cannot (no root, no Debian mirrors) the tests that need it are skipped with the
reason. The daemon is never started: it would need signature databases from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tentacle_manager.diagnostics.antivirus import (
    AdvisorError,
    AgentAccount,
    CoverageState,
    Executable,
    Recommendation,
    advise,
    clamd_snippet,
    detect,
    recommend,
)
from tentacle_manager.diagnostics.antivirus.clamd import (
    ClamdConfigProblem,
    clamd_coverage,
    parse_clamd_conf,
    read_clamd_conf,
)
from tentacle_manager.diagnostics.antivirus.observations import observe

ROOT = Path(__file__).resolve().parent.parent
HOME = PurePosixPath("/srv/tentacle")
CONF = Path("/etc/clamd.d/scan.conf")
TENTACLE = AgentAccount("tentacle", 999)


@pytest.fixture(scope="module")
def clamav() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("scripts/ensure-clamav installs Debian's package; this is not Debian")
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-clamav")], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.skip(f"ClamAV could not be installed: {done.stderr[-300:]}")


def clamconf(folder: Path) -> dict[str, str]:
    """What ClamAV's own parser made of `folder`/clamd.conf: its `Name = values` lines."""
    shown = subprocess.run(
        ["clamconf", "-c", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert "ERROR" not in shown.stderr, shown.stderr
    return {line.split(" = ", 1)[0]: line for line in shown.stdout.splitlines() if " = " in line}


@contextlib.contextmanager
def fake_clamd(folder: Path, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process the kernel names `clamd` (a symlink to Python) with clamd's arguments."""
    program = folder / "clamd"
    program.symlink_to(os.path.realpath(sys.executable))
    sleeper = folder / "sleeper.py"
    sleeper.write_text("import time\ntime.sleep(60)\n")
    process = subprocess.Popen([str(program), str(sleeper), *arguments])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def folders_and_shell() -> list[Recommendation]:
    return recommend(HOME, [Executable(PurePosixPath("/usr/bin/bash"), "the shell")])


def test_a_real_clamav_installation_is_found_by_its_package_and_its_config(
    clamav: None, tmp_path: Path
) -> None:
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "clamav-daemon"], capture_output=True, text=True
    ).stdout
    home = tmp_path / "home"
    (home / "Work").mkdir(parents=True)
    advice = asyncio.run(advise(home))
    clam = next(a for a in advice.assessments if a.detection.product.key == "clamav")
    evidence = [(e.kind.value, e.detail) for e in clam.detection.evidence]
    assert ("package", f"clamav-daemon {version} (dpkg)") in evidence
    assert (
        "config",
        "/etc/clamav/clamd.conf: no OnAccessIncludePath or OnAccessMountPath "
        "(on-access not configured)",
    ) in evidence
    assert {c.state for c in clam.coverage} == {CoverageState.INACTIVE}
    assert clam.coverage[1].detail == (
        "On-access scanning is off: clamonacc is not running and /etc/clamav/clamd.conf sets "
        "no OnAccessIncludePath or OnAccessMountPath. clamd's own scans (clamdscan) do not "
        "skip it: no ExcludePath matches."
    )


def test_clamav_reads_the_generated_snippet_exactly_as_the_advisor_does(
    clamav: None, tmp_path: Path
) -> None:
    home = PurePosixPath('/srv/tentacle homes/o\'brien "prod" ')
    snippet = clamd_snippet(home, recommend(home, []), config=None, account=TENTACLE)
    (tmp_path / "clamd.conf").write_text(snippet)
    shown = clamconf(tmp_path)
    ours = parse_clamd_conf(snippet, tmp_path / "clamd.conf")
    excluded = [s.value for s in ours.values("OnAccessExcludePath")]
    assert excluded == [f"{home}/{name}" for name in ("Tools", "Work", "Files", "Logs")]
    for name in ("OnAccessExcludePath", "ExcludePath"):
        values = ", ".join(f'"{s.value}"' for s in ours.values(name))
        assert shown[name] == f"{name} = {values}"


def test_clamd_conf_is_read_as_clamav_reads_it(clamav: None, tmp_path: Path) -> None:
    text = (
        "# comment\n"
        "\tOnAccessIncludePath   /srv/a b  \n"
        'OnAccessIncludePath "/srv/quoted "x"  "\n'
        "  OnAccessExcludeUname tentacle\n"
        "LogFile /tmp/one.log\n"
        "LogFile /tmp/two.log\n"
        "OnAccessExcludeRootUID yes\n"
        "a\n"
        "ExcludePath ^/srv/x(/|$)\n"
    )
    (tmp_path / "clamd.conf").write_text(text)
    shown = clamconf(tmp_path)
    ours = read_clamd_conf(tmp_path / "clamd.conf")
    assert [s.value for s in ours.values("OnAccessIncludePath")] == [
        "/srv/a b",
        '/srv/quoted "x"  ',
    ]
    for name in ("OnAccessIncludePath", "OnAccessExcludeUname", "ExcludePath"):
        values = ", ".join(f'"{s.value}"' for s in ours.values(name))
        assert shown[name] == f"{name} = {values}"
    assert shown["LogFile"] == f'LogFile = "{ours.values("LogFile")[0].value}"'  # the first wins
    assert shown["OnAccessExcludeRootUID"] == 'OnAccessExcludeRootUID = "yes"'
    assert ours.flag("OnAccessExcludeRootUID")


def test_a_bad_clamd_conf_is_refused_naming_the_line_and_the_rule(tmp_path: Path) -> None:
    def error(text: str) -> str:
        with pytest.raises(AdvisorError) as raised:
            parse_clamd_conf(text, CONF)
        return str(raised.value)

    assert error("# Comment\nExample\n") == (
        f"{CONF}:2: still has the 'Example' line: clamd refuses to start until it is removed"
    )
    assert error("LogFile /x\nab\n") == f"{CONF}:2: option ab has no value"
    assert (
        error('LogFile "/tmp/x\n')
        == f"{CONF}:1: the value of LogFile opens a quote it never closes"
    )
    assert error('LogFile ""\n') == f"{CONF}:1: the value of LogFile is an empty quoted string"
    assert error("ExcludePath ^/srv/(\n") == (
        f"{CONF}:1: ExcludePath must be a regular expression: missing ), unterminated "
        "subpattern at position 6"
    )
    assert error("# " + "x" * 600 + "\n") == (
        f"{CONF}:1: is longer than the 511 characters clamd reads"
    )
    with pytest.raises(AdvisorError) as raised:
        read_clamd_conf(tmp_path)
    assert str(raised.value) == f"{tmp_path}: cannot be read: Is a directory."
    with pytest.raises(AdvisorError, match="cannot be read: No such file or directory"):
        observe(clamd_conf=tmp_path / "missing.conf")


def test_the_config_a_running_clamd_was_started_with_is_the_one_read(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text("OnAccessIncludePath /srv\nOnAccessExcludePath /srv/tentacle/Work\n")
    with fake_clamd(tmp_path, f"--config-file={good}") as clamd:
        seen = observe()
    first = seen.clamd_configs[0]
    assert first.path == good
    (clam,) = [d for d in detect(seen) if d.product.key == "clamav"]
    details = [e.detail for e in clam.evidence]
    assert f"pid {clamd.pid} clamd ({os.path.realpath(sys.executable)})" in details
    assert f"{good}: on-access scanning watches OnAccessIncludePath /srv (line 1)" in details


def test_a_config_the_machine_uses_that_does_not_read_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("Example\n")
    with fake_clamd(tmp_path, "-c", str(bad)):
        seen = observe()
    assert seen.clamd_configs[0] == ClamdConfigProblem(
        bad, f"{bad}:1: still has the 'Example' line: clamd refuses to start until it is removed"
    )


def coverage(
    text: str, *, running: bool = False, account: AgentAccount | None = TENTACLE
) -> list[str]:
    config = parse_clamd_conf(text, CONF)
    return [
        f"{c.state.value}: {c.detail}"
        for c in (
            clamd_coverage(config, r, clamonacc_running=running, account=account)
            for r in folders_and_shell()
        )
    ]


def test_without_on_access_scanning_only_clamds_own_scans_matter() -> None:
    tools, work, *_, shell = coverage("ExcludePath ^/srv/tentacle/Work(/|$)\n")
    assert tools == (
        f"product not active: On-access scanning is off: clamonacc is not running and {CONF} "
        "sets no OnAccessIncludePath or OnAccessMountPath. clamd's own scans (clamdscan) do not "
        "skip it: no ExcludePath matches."
    )
    assert work == (
        f"product not active: On-access scanning is off: clamonacc is not running and {CONF} "
        "sets no OnAccessIncludePath or OnAccessMountPath. clamd's own scans skip it too: "
        f"ExcludePath ^/srv/tentacle/Work(/|$) ({CONF}:1)."
    )
    assert shell.startswith("product not active")


def test_on_access_exclusions_cover_a_folder_and_its_sub_directories() -> None:
    tools, work, _, logs, shell = coverage(
        "OnAccessIncludePath /srv\nOnAccessExcludePath /srv/tentacle/Work/\n"
        "OnAccessExcludePath /srv/tentacle/Log\n"
    )
    assert work == (
        f"set: OnAccessExcludePath /srv/tentacle/Work/ ({CONF}:2). clamd's own scans "
        "(clamdscan) do not skip it: no ExcludePath matches."
    )
    assert tools.startswith("not set: On-access scanning watches it and no OnAccessExcludePath")
    assert logs.startswith("not set")  # /srv/tentacle/Log is another folder, not a prefix
    assert shell == (
        "not set: ClamAV cannot exclude a program, only a user: OnAccessExcludeUname tentacle "
        "would skip every file the agent's user opens."
    )
    parent = coverage("OnAccessIncludePath /srv\nOnAccessExcludePath /srv/tentacle\n")
    assert [line.split(":")[0] for line in parent] == ["set"] * 4 + ["not set"]


def test_only_watched_folders_need_excluding() -> None:
    elsewhere = coverage("OnAccessIncludePath /home\nOnAccessMountPath /var\n")
    assert elsewhere[0] == (
        f"not watched: Outside every OnAccessIncludePath and OnAccessMountPath of {CONF}. "
        "clamd's own scans (clamdscan) do not skip it: no ExcludePath matches."
    )
    inside = coverage("OnAccessIncludePath /srv/tentacle/Work/deploy\n")
    assert [line.split(":")[0] for line in inside[:4]] == [
        "not watched",
        "not set",
        "not watched",
        "not watched",
    ]
    by_command_line = coverage("LogFile /tmp/clamd.log\n", running=True)  # a --watch-list
    assert [line.split(":")[0] for line in by_command_line[:4]] == ["not set"] * 4


def test_excluding_the_agents_user_covers_everything_it_opens() -> None:
    by_name = coverage("OnAccessIncludePath /\nOnAccessExcludeUname tentacle\n")
    assert by_name[-1] == (
        f"set: OnAccessExcludeUname tentacle ({CONF}:2) skips every file the agent's user opens."
    )
    assert {line.split(":")[0] for line in by_name} == {"set"}
    by_uid = coverage("OnAccessIncludePath /\nOnAccessExcludeUID 999\n")
    assert {line.split(":")[0] for line in by_uid} == {"set"}
    root_only = "OnAccessIncludePath /\nOnAccessExcludeRootUID yes\n"
    assert {line.split(":")[0] for line in coverage(root_only)} == {"not set"}
    as_root = coverage(root_only, account=AgentAccount("root", 0))
    assert {line.split(":")[0] for line in as_root} == {"set"}
    unknown = coverage("OnAccessIncludePath /\n", account=None)
    assert unknown[-1] == (
        "not set: ClamAV cannot exclude a program, only a user: OnAccessExcludeUname with the "
        "agent's user would skip every file the agent's user opens."
    )
