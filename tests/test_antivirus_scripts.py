# ruff: noqa: E501, RUF001 - expected texts are whole lines, and the home has a typographic quote
"""The artefacts a person copies or saves, asserted whole for homes whose paths have a space and
quotes in them: the Defender script and its undo twin, the clamd.conf snippet and the request
pack; then how each format's quoting works, and how they are written to disk."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from tentacle_manager.diagnostics.antivirus import (
    Advice,
    AdvisorError,
    AgentAccount,
    Executable,
    Observations,
    Recommendation,
    Target,
    assemble,
    clamd_snippet,
    defender_script,
    recommend,
    request_pack,
    write_artefacts,
)
from tentacle_manager.diagnostics.antivirus.clamd import parse_clamd_conf
from tentacle_manager.diagnostics.antivirus.scripts import (
    ere_escape,
    markdown_code,
    powershell_literal,
)
from tentacle_manager.platform.antivirus.records import RunningProcess
from tentacle_manager.platform.antivirus.windows import parse_snapshot

SAMPLES = Path(__file__).parent / "antivirus_samples"
WINDOWS_HOME = PureWindowsPath("C:\\Octopus Deploy\\O'Brien\u2019s Tentacle")
LINUX_HOME = PurePosixPath('/srv/tentacle homes/o\'brien "prod"')
WINDOWS_PROGRAMS = [
    Executable(
        PureWindowsPath(r"C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe"),
        "The agent's own program.",
    ),
    Executable(
        PureWindowsPath(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"),
        "Runs every PowerShell script step.",
    ),
]
BASH = [Executable(PurePosixPath("/usr/bin/bash"), "Runs every bash script step.")]

DEFENDER_ADD = r"""# Microsoft Defender Antivirus exclusions for this Tentacle home:
#   C:\Octopus Deploy\O'Brien’s Tentacle
# Each added exclusion logs event 5007, and security monitoring flags
# Add-MpPreference with -ExclusionPath or -ExclusionProcess (Sigma): tell your
# security team first. Process exclusions, as Microsoft documents them:
# - A process exclusion skips the files the process opens; it does not exclude the program's own image file.
# - It applies to real-time protection only: scheduled and on-demand scans still scan those files.
# - Give the full path: an image name alone (bash.exe) excludes every program of that name, wherever it is.
# - Wildcards (* and ?) work in full paths only.
# - Exclusions set on the machine merge with those from Group Policy or Intune, and policy wins where they conflict.
# - A process exclusion also turns off Network Protection and attack surface reduction rules for that process.
# - An anti-virus exclusion does not stop an EDR sensor (Defender for Endpoint included) from hooking the process.
# Run it in an elevated PowerShell session; -DryRun prints what it would change and
# changes nothing.
param([switch]$DryRun)
$ErrorActionPreference = 'Stop'
$paths = @(
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Tools'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Work'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Files'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Logs'
)
$processes = @(
    'C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe'
    'C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe'
)
$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$administrator = [Security.Principal.WindowsBuiltInRole]::Administrator
if (-not $DryRun -and -not ([Security.Principal.WindowsPrincipal]$identity).IsInRole($administrator)) {
    throw 'Run this script as administrator, or with -DryRun to see what it would do.'
}
foreach ($path in $paths) {
    if ($DryRun) { Write-Output "Would add path exclusion: $path"; continue }
    Add-MpPreference -ExclusionPath $path
    Write-Output "Added path exclusion: $path"
}
foreach ($process in $processes) {
    if ($DryRun) { Write-Output "Would add process exclusion: $process"; continue }
    Add-MpPreference -ExclusionProcess $process
    Write-Output "Added process exclusion: $process"
}
"""

DEFENDER_UNDO = r"""# Removes the Microsoft Defender Antivirus exclusions that defender-exclusions.ps1 adds
# for this Tentacle home; one that existed before that script ran is removed too:
#   C:\Octopus Deploy\O'Brien’s Tentacle
# Run it in an elevated PowerShell session; -DryRun prints what it would change and
# changes nothing.
param([switch]$DryRun)
$ErrorActionPreference = 'Stop'
$paths = @(
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Tools'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Work'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Files'
    'C:\Octopus Deploy\O''Brien’’s Tentacle\Logs'
)
$processes = @(
    'C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe'
    'C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe'
)
$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$administrator = [Security.Principal.WindowsBuiltInRole]::Administrator
if (-not $DryRun -and -not ([Security.Principal.WindowsPrincipal]$identity).IsInRole($administrator)) {
    throw 'Run this script as administrator, or with -DryRun to see what it would do.'
}
foreach ($path in $paths) {
    if ($DryRun) { Write-Output "Would remove path exclusion: $path"; continue }
    Remove-MpPreference -ExclusionPath $path
    Write-Output "Removed path exclusion: $path"
}
foreach ($process in $processes) {
    if ($DryRun) { Write-Output "Would remove process exclusion: $process"; continue }
    Remove-MpPreference -ExclusionProcess $process
    Write-Output "Removed process exclusion: $process"
}
"""

CLAMD_SNIPPET = r"""# ClamAV exclusions for this Tentacle home:
#   /srv/tentacle homes/o'brien "prod"
# Add these lines to /etc/clamav/clamd.conf, then restart clamd and clamonacc:
# both read the file only when they start.
# On-access scanning (clamonacc): each folder and its sub-directories.
OnAccessExcludePath "/srv/tentacle homes/o'brien "prod"/Tools"
OnAccessExcludePath "/srv/tentacle homes/o'brien "prod"/Work"
OnAccessExcludePath "/srv/tentacle homes/o'brien "prod"/Files"
OnAccessExcludePath "/srv/tentacle homes/o'brien "prod"/Logs"
# clamd's own scans (clamdscan): ExcludePath takes a regular expression.
ExcludePath "^/srv/tentacle homes/o'brien "prod"/Tools(/|$)"
ExcludePath "^/srv/tentacle homes/o'brien "prod"/Work(/|$)"
ExcludePath "^/srv/tentacle homes/o'brien "prod"/Files(/|$)"
ExcludePath "^/srv/tentacle homes/o'brien "prod"/Logs(/|$)"
# ClamAV cannot exclude a program, only a user. This line would skip every file the
# agent's user opens, its scripts' files included, so it is left for you to decide:
# OnAccessExcludeUname tentacle
"""

REQUEST_PACK = r"""# Anti-virus exclusion request: Tentacle agent on build-07

The Tentacle deployment agent with its home at `C:\Octopus Deploy\O'Brien’s Tentacle` runs deployment scripts that write, execute and delete many small files. On-access scanning of its folders slows those scripts down and can make them hang. Octopus Deploy's troubleshooting guide recommends excluding the folders below, with their sub-directories.

## Security products found on this host

| Product | Evidence | Where its exclusions are made |
| --- | --- | --- |
| Microsoft Defender Antivirus | service: WinDefend (Running)<br>service: WdNisSvc (Running)<br>driver: WdFilter<br>status: Get-MpComputerStatus: AMRunningMode Normal, AMProductVersion 4.18.24090.11 | this host's Defender preferences (Add-MpPreference), or Group Policy or Intune where they manage Defender |
| CrowdStrike Falcon | process: pid 4242 CSFalconService.exe (C:\Program Files\CrowdStrike\CSFalconService.exe)<br>service: CSFalconService (Running) | the Falcon console or API: machine-learning exclusions for paths, IOA exclusions with ifn_regex (image file name) and cl_regex (command line) for processes |

## Folder exclusions requested (with sub-directories)

| Priority | Folder | Why |
| --- | --- | --- |
| 1 (first) | `C:\Octopus Deploy\O'Brien’s Tentacle\Tools` | Calamari and the other tools the server pushes are unpacked and started from here. |
| 1 (first) | `C:\Octopus Deploy\O'Brien’s Tentacle\Work` | Every script runs in a new workspace here: its files are written, made executable, run and deleted, and an on-access scanner inspects each step. |
| 2 (if problems remain) | `C:\Octopus Deploy\O'Brien’s Tentacle\Files` | The package cache: packages are written here and read again later. |
| 2 (if problems remain) | `C:\Octopus Deploy\O'Brien’s Tentacle\Logs` | The agent appends to its log all the time; a scanner that holds the file after each write slows every line. |

## Process exclusions requested (full paths)

Only if the folder exclusions are not enough. Please exclude these by full path, not by image name: an image name matches every program of that name, wherever it is.

| Program | Why |
| --- | --- |
| `C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe` | The agent's own program. |
| `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe` | Runs every PowerShell script step. |

What a process exclusion does and does not do (Microsoft's documentation):

- A process exclusion skips the files the process opens; it does not exclude the program's own image file.
- It applies to real-time protection only: scheduled and on-demand scans still scan those files.
- Give the full path: an image name alone (bash.exe) excludes every program of that name, wherever it is.
- Wildcards (* and ?) work in full paths only.
- Exclusions set on the machine merge with those from Group Policy or Intune, and policy wins where they conflict.
- A process exclusion also turns off Network Protection and attack surface reduction rules for that process.
- An anti-virus exclusion does not stop an EDR sensor (Defender for Endpoint included) from hooking the process.

## Current state on this host

### Microsoft Defender Antivirus

| Exclusion | State | Detail |
| --- | --- | --- |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Tools` | not set | No ExclusionPath entry covers it. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Work` | set | ExclusionPath entry 'C:\Octopus Deploy\O'Brien’s Tentacle\Work'. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Files` | not set | No ExclusionPath entry covers it. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Logs` | not set | No ExclusionPath entry covers it. |
| `C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe` | not set | No ExclusionProcess entry covers it. |
| `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe` | set | ExclusionProcess entry 'powershell.exe' (an image name: every program of that name is excluded, wherever it is; prefer the full path). |

- Windows Server's automatic exclusions never appear in Defender's lists.
- Check one path as administrator with MpCmdRun.exe -CheckExclusion -path <path> (platform 4.18.1812.3 or later).

### CrowdStrike Falcon

| Exclusion | State | Detail |
| --- | --- | --- |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Tools` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Work` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Files` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |
| `C:\Octopus Deploy\O'Brien’s Tentacle\Logs` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |
| `C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |
| `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe` | unknown: managed centrally | Made in the vendor's console, which this machine cannot read. |

- Ask for the exclusions in the Falcon console or API: machine-learning exclusions for paths, IOA exclusions with ifn_regex (image file name) and cl_regex (command line) for processes.

Not checked:

- drivers: Get-CimInstance Win32_SystemDriver failed: Access denied

## What the change will look like to your monitoring

- **Microsoft Defender Antivirus**: Each added exclusion logs event 5007 (configuration changed) in the Microsoft-Windows-Windows Defender/Operational log, and Add-MpPreference with -ExclusionPath or -ExclusionProcess matches the public Sigma rule for Defender exclusions added with PowerShell (defense impairment, level medium).
- **CrowdStrike Falcon**: The exclusion is made in the vendor's console, so nothing changes on this host; the console's own audit log records who made it.
- Whatever the product, an exclusion is a reduction of protection and may be flagged as such in a security review.

## How to check the result

- `tentacle antivirus --measure` on this host times a canary workload (scripts written, made executable, run and deleted) in the Work folder against a folder outside it. Once Work is excluded it should not be slower than the other folder.
- Microsoft Defender: `MpCmdRun.exe -CheckExclusion -path <path>` as administrator.
"""


def windows_advice() -> Advice:
    """Defender (which already excludes Work, and powershell.exe by image name) and
    CrowdStrike on a Windows host; one probe could not look."""
    report = json.loads((SAMPLES / "defender-admin-excluded.json").read_text())
    report["DefenderPreference"]["ExclusionPath"] = [str(WINDOWS_HOME / "Work")]
    report["Services"].append({"Name": "CSFalconService", "Status": "Running"})
    windows = parse_snapshot(json.dumps(report), "query.json")
    falcon = RunningProcess(
        4242,
        "CSFalconService.exe",
        r"C:\Program Files\CrowdStrike\CSFalconService.exe",
        (),
    )
    seen = Observations(
        processes=(falcon,),
        services=windows.services,
        drivers=windows.drivers,
        windows=windows,
        not_checked=("drivers: Get-CimInstance Win32_SystemDriver failed: Access denied",),
    )
    return assemble(WINDOWS_HOME, seen, WINDOWS_PROGRAMS, None, {})


def test_the_defender_script_and_its_undo_twin_are_exactly_these() -> None:
    recommendations = recommend(WINDOWS_HOME, WINDOWS_PROGRAMS)
    assert defender_script(WINDOWS_HOME, recommendations) == DEFENDER_ADD
    assert defender_script(WINDOWS_HOME, recommendations, undo=True) == DEFENDER_UNDO


def test_the_clamd_snippet_is_exactly_this_and_reads_back_as_the_paths() -> None:
    recommendations = recommend(LINUX_HOME, BASH)
    snippet = clamd_snippet(
        LINUX_HOME,
        recommendations,
        config=Path("/etc/clamav/clamd.conf"),
        account=AgentAccount("tentacle", 999),
    )
    assert snippet == CLAMD_SNIPPET
    config = parse_clamd_conf(snippet, Path("clamd.conf"))
    folders = [str(r.path) for r in recommendations[:4]]
    assert [s.value for s in config.values("OnAccessExcludePath")] == folders
    patterns = [re.compile(s.value) for s in config.values("ExcludePath")]
    for folder, pattern in zip(folders, patterns, strict=True):
        assert pattern.search(folder) and pattern.search(f"{folder}/deploy/script.sh")
        assert not pattern.search(f"{folder}2/script.sh")
    unknown_user = clamd_snippet(LINUX_HOME, recommendations, config=None, account=None)
    assert "# Add these lines to the clamd.conf clamd uses, then restart" in unknown_user
    assert unknown_user.endswith("# OnAccessExcludeUname <the agent's user>\n")
    no_name = clamd_snippet(
        LINUX_HOME, recommendations, config=None, account=AgentAccount(None, 1234)
    )
    assert no_name.endswith("# OnAccessExcludeUID 1234\n")


def test_the_request_pack_is_exactly_this() -> None:
    assert request_pack(windows_advice(), "build-07") == REQUEST_PACK


def test_each_format_quotes_its_own_way() -> None:
    assert powershell_literal("O'Brien\u2018s \u2019x\u201a\u201b $env:X `n") == (
        "'O''Brien\u2018\u2018s \u2019\u2019x\u201a\u201a\u201b\u201b $env:X `n'"
    )
    assert ere_escape(r"/a.b[c](d)*+?{1}|^$\z") == r"/a\.b\[c\]\(d\)\*\+\?\{1\}\|\^\$\\z"
    assert markdown_code("/plain") == "`/plain`"
    assert markdown_code("/a`b") == "``/a`b``"
    assert markdown_code("`x``") == "``` `x`` ```"


def test_paths_that_cannot_be_written_safely_are_refused_by_name() -> None:
    with pytest.raises(AdvisorError) as raised:
        recommend(PurePosixPath("/srv/line\nbreak"), BASH)
    assert str(raised.value) == (
        "home: must not contain control characters such as newlines: '/srv/line\\nbreak'"
    )
    with pytest.raises(AdvisorError, match="home: must be an absolute path, not 'Tentacle'"):
        recommend(PureWindowsPath("Tentacle"), WINDOWS_PROGRAMS)
    with pytest.raises(AdvisorError, match="executable: must be an absolute path"):
        recommend(LINUX_HOME, [Executable(PurePosixPath("bash"), "relative")])
    injected = Recommendation(Target.PROCESS, PureWindowsPath("C:\\x\nRemove-Item C:\\"), 3, "")
    with pytest.raises(AdvisorError, match="process: must not contain control characters"):
        defender_script(WINDOWS_HOME, [injected])
    with pytest.raises(AdvisorError, match="home: Defender exclusions take Windows paths"):
        defender_script(LINUX_HOME, recommend(LINUX_HOME, BASH))
    with pytest.raises(AdvisorError, match=r"home: clamd\.conf takes Linux paths"):
        clamd_snippet(WINDOWS_HOME, [], config=None, account=None)
    deep = PurePosixPath("/" + "/".join(["folder"] * 70))
    with pytest.raises(AdvisorError, match=r"home: is too long for a clamd.conf line \(511"):
        clamd_snippet(deep, recommend(deep, []), config=None, account=None)


def test_the_artefacts_are_written_for_the_homes_os(tmp_path: Path) -> None:
    advice = windows_advice()
    written = write_artefacts(advice, tmp_path / "out" / "av", host="build-07")
    assert [p.name for p in written] == [
        "defender-exclusions.ps1",
        "defender-exclusions-undo.ps1",
        "exclusion-request.md",
    ]
    missing = [r for r in advice.recommendations if r.path.name not in ("Work", "powershell.exe")]
    script = written[0].read_bytes()
    assert script.startswith(b"\xef\xbb\xbf")  # Windows PowerShell 5.1 reads UTF-8 only with it
    assert script[3:].decode() == defender_script(WINDOWS_HOME, missing)
    assert written[2].read_text() == REQUEST_PACK

    linux = assemble(LINUX_HOME, Observations(), BASH, AgentAccount("tentacle", 999), {})
    written = write_artefacts(linux, tmp_path / "linux", host="build-07")
    assert [p.name for p in written] == ["clamd-exclusions.conf", "exclusion-request.md"]
    assert "No security product was detected." in written[1].read_text()

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(AdvisorError) as raised:
        write_artefacts(linux, blocker, host="build-07")
    assert str(raised.value) == (
        f"{blocker}: cannot be written: File exists. Choose a folder you can write to."
    )
