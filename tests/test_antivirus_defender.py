"""Microsoft Defender: the exact PowerShell query the advisor would run on Windows, Defender's
states read from recorded output of that query, and how its exclusion lists are matched.

This machine has no Defender, so the query is not run here: the tests check the command word
for word, and feed the parser output in the shape the query prints (tests/antivirus_samples/,
one file per state a real machine can be in).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

import pytest

from tentacle_manager.diagnostics.antivirus import (
    AdvisorError,
    CoverageState,
    Executable,
    Observations,
    Recommendation,
    Target,
    assemble,
    recommend,
)
from tentacle_manager.diagnostics.antivirus.defender import (
    Visibility,
    defender_coverage,
    defender_status,
)
from tentacle_manager.diagnostics.antivirus.detection import detect
from tentacle_manager.diagnostics.antivirus.observations import observe
from tentacle_manager.platform.antivirus.windows import (
    QUERY_COMMAND,
    WindowsReportError,
    WindowsSnapshot,
    parse_snapshot,
    query_windows,
)
from tentacle_manager.platform.services.spec import Completed

SAMPLES = Path(__file__).parent / "antivirus_samples"
HOME = PureWindowsPath(r"C:\Octopus\Tentacle")
POWERSHELL = PureWindowsPath(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe")
AGENT = PureWindowsPath(r"C:\Program Files\Octopus Deploy\Tentacle\tentacle.exe")
EXECUTABLES = [Executable(AGENT, "the agent"), Executable(POWERSHELL, "the shell")]
ENVIRONMENT = {"ProgramData": r"C:\ProgramData", "SystemRoot": r"C:\Windows"}

EXPECTED_SCRIPT = (
    "$ErrorActionPreference = 'Stop'; "
    "$report = [ordered]@{}; "
    "$principal = [Security.Principal.WindowsPrincipal]"
    "[Security.Principal.WindowsIdentity]::GetCurrent(); "
    "$report.IsAdministrator = $principal.IsInRole("
    "[Security.Principal.WindowsBuiltInRole]::Administrator); "
    "$report.Services = @(Get-Service -ErrorAction SilentlyContinue | ForEach-Object "
    "{ [ordered]@{ Name = $_.Name; Status = [string]$_.Status } }); "
    "try { $report.Drivers = @(Get-CimInstance -ClassName Win32_SystemDriver "
    "-Filter 'State=''Running''' | ForEach-Object { $_.Name }) } "
    "catch { $report.DriversError = $_.Exception.Message }; "
    "try { $report.DefenderStatus = Get-MpComputerStatus | Select-Object AMServiceEnabled, "
    "AntivirusEnabled, RealTimeProtectionEnabled, AMRunningMode, AMProductVersion } "
    "catch { $report.DefenderStatusError = $_.Exception.Message }; "
    "try { $report.DefenderPreference = Get-MpPreference | Select-Object ExclusionPath, "
    "ExclusionProcess, ExclusionExtension, HideExclusionsFromLocalAdmins } "
    "catch { $report.DefenderPreferenceError = $_.Exception.Message }; "
    "$json = $report | ConvertTo-Json -Depth 4 -Compress; "
    "[regex]::Replace($json, '[^\\x00-\\x7F]', { param($m) '\\u{0:x4}' -f [int][char]$m.Value })"
)


class PowerShell:
    """Stands in for powershell.exe: records each command, answers with a recorded output."""

    def __init__(self, answer: Completed) -> None:
        self.answer = answer
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.commands.append(list(argv))
        return self.answer


def sample(name: str) -> str:
    return (SAMPLES / f"{name}.json").read_text()


def snapshot(name: str) -> WindowsSnapshot:
    return parse_snapshot(sample(name), f"{name}.json")


def observed(windows: WindowsSnapshot) -> Observations:
    """What observe() makes of the query on Windows (processes aside)."""
    return Observations(windows=windows, services=windows.services, drivers=windows.drivers)


def recommendations() -> list[Recommendation]:
    return recommend(HOME, EXECUTABLES)


def test_the_query_is_one_powershell_command_in_clear_text_without_double_quotes() -> None:
    assert QUERY_COMMAND == (
        "powershell.exe",
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-Command",
        EXPECTED_SCRIPT,
    )
    assert '"' not in EXPECTED_SCRIPT  # CreateProcess quoting would have to escape them
    powershell = PowerShell(Completed(0, sample("defender-admin-none")))
    seen = query_windows(powershell)
    assert powershell.commands == [list(QUERY_COMMAND)]
    assert seen.is_administrator and seen.drivers == ("WdFilter", "ACPI")
    assert seen.services[0].name == "WinDefend" and seen.services[0].running


NOT_ADMIN = ("unknown: not administrator",) * 2
HIDDEN = ("unknown: hidden by policy",) * 2
INACTIVE = ("product not active",) * 2


@pytest.mark.parametrize(
    ("name", "active", "visibility", "work", "agent"),
    [
        ("defender-admin-excluded", True, Visibility.VISIBLE, "set", "not set"),
        ("defender-admin-none", True, Visibility.VISIBLE, "not set", "not set"),
        ("defender-standard-user", True, Visibility.NOT_ADMIN, *NOT_ADMIN),
        ("defender-standard-user-2020", True, Visibility.NOT_ADMIN, *NOT_ADMIN),
        ("defender-standard-user-blank", True, Visibility.NOT_ADMIN, *NOT_ADMIN),
        ("defender-hidden-by-policy", True, Visibility.HIDDEN_BY_POLICY, *HIDDEN),
        ("defender-passive-with-crowdstrike", False, Visibility.VISIBLE, *INACTIVE),
        ("defender-not-running-with-symantec", False, Visibility.UNREADABLE, *INACTIVE),
    ],
)
def test_each_recorded_state_reads_as_that_state(
    name: str, active: bool, visibility: Visibility, work: str, agent: str
) -> None:
    status = defender_status(snapshot(name))
    assert (status.active, status.paths.visibility) == (active, visibility)
    tools, work_folder, *_, agent_program, _ = recommendations()
    assert defender_coverage(status, work_folder, ENVIRONMENT).state.value == work
    assert defender_coverage(status, tools, ENVIRONMENT).state.value == work
    assert defender_coverage(status, agent_program, ENVIRONMENT).state.value == agent


def test_the_details_say_why_and_what_to_do() -> None:
    work = recommendations()[1]

    def detail(name: str) -> str:
        return defender_coverage(defender_status(snapshot(name)), work, ENVIRONMENT).detail

    assert detail("defender-admin-excluded") == (
        r"ExclusionPath entry 'c:\octopus\tentacle\' (a parent folder)."
    )
    assert detail("defender-standard-user") == (
        "Defender answers 'N/A: Must be an administrator to view exclusions'. Run the advisor "
        "elevated to read ExclusionPath."
    )
    assert detail("defender-standard-user-blank") == (
        "Defender shows no exclusions to a user who is not an administrator. Run the advisor "
        "elevated to read ExclusionPath."
    )
    assert detail("defender-hidden-by-policy") == (
        "Defender answers 'N/A: Administrators are not allowed to view exclusions'. Ask the "
        "team that sets the Defender policy whether it is excluded."
    )
    assert detail("defender-passive-with-crowdstrike") == (
        "AMRunningMode is 'Passive Mode', not 'Normal': another anti-virus is the active one "
        "and Defender does not scan files on access."
    )
    assert detail("defender-not-running-with-symantec") == (
        "Get-MpComputerStatus failed: Operation failed with the following error: 0x800106ba. "
        "Operation: MpComputerStatus. Target: ."
    )


def test_defender_is_reported_on_windows_even_when_not_running_with_the_active_product() -> None:
    seen = observed(snapshot("defender-not-running-with-symantec"))
    found = {d.product.key: [(e.kind.value, e.detail) for e in d.evidence] for d in detect(seen)}
    assert found == {
        "defender": [
            (
                "status",
                "Get-MpComputerStatus failed: Operation failed with the following error: "
                "0x800106ba. Operation: MpComputerStatus. Target: .",
            )
        ],
        "symantec": [("service", "SepMasterService (Running)"), ("driver", "SRTSP")],
    }


def test_coverage_follows_defenders_matching_rules() -> None:
    def state(entries: list[str], target: Recommendation, processes: bool = False) -> str:
        preference = {"ExclusionPath": [], "ExclusionProcess": []}
        preference["ExclusionProcess" if processes else "ExclusionPath"] = entries
        report = json.loads(sample("defender-admin-none"))
        report["DefenderPreference"] = preference
        status = defender_status(parse_snapshot(json.dumps(report), "test"))
        coverage = defender_coverage(status, target, ENVIRONMENT)
        return f"{coverage.state.value}: {coverage.detail}"

    tools, work, files, logs, agent, shell = recommend(
        PureWindowsPath(r"C:\ProgramData\Octopus Tentacle"), EXECUTABLES
    )
    assert state([r"C:\PROGRAMDATA\octopus tentacle\work"], work) == (
        r"set: ExclusionPath entry 'C:\PROGRAMDATA\octopus tentacle\work'."
    )
    assert state([r"%programdata%\Octopus Tentacle"], logs) == (
        r"set: ExclusionPath entry '%programdata%\Octopus Tentacle' (a parent folder)."
    )
    assert state([r"%UnknownVariable%\Octopus Tentacle"], logs).startswith("not set")
    assert state([r"C:\ProgramData\Octopus Tentacle\Work"], tools).startswith("not set")
    assert state([r"C:\ProgramData\Octopus Tentacle\Work"], files).startswith("not set")
    assert state([r"C:\ProgramData\*\Tools"], tools) == (
        r"set: ExclusionPath entry 'C:\ProgramData\*\Tools' (a wildcard: confirm with "
        "MpCmdRun.exe -CheckExclusion -path)."
    )
    assert state([r"C:\ProgramData\Octopus Tentacle\Work\*"], work).startswith("set")
    assert state([r"C:\ProgramData\Octopus Tentacle\Work\*.ps1"], work).startswith("not set")
    assert state([r"C:\ProgramData\Octopus Tentacle\Wor?"], work).startswith("set")
    assert state(["powershell.exe"], shell, processes=True) == (
        "set: ExclusionProcess entry 'powershell.exe' (an image name: every program of that "
        "name is excluded, wherever it is; prefer the full path)."
    )
    assert state([str(POWERSHELL).upper()], shell, processes=True).startswith("set")
    wildcard = r"%SystemRoot%\System32\WindowsPowerShell\*\powershell.exe"
    assert state([wildcard], shell, processes=True).startswith("set")
    assert state([r"C:\Program Files\Octopus Deploy"], agent, processes=True).startswith("not set")
    assert state(["tentacle.exe"], shell, processes=True) == (
        "not set: No ExclusionProcess entry covers it."
    )
    # a folder list says nothing about processes, and the other way round
    assert state([r"C:\Program Files\Octopus Deploy"], agent).startswith("not set")


def test_bad_output_is_one_error_that_names_the_field_and_the_rule() -> None:
    def error(text: str) -> str:
        with pytest.raises(WindowsReportError) as raised:
            parse_snapshot(text, "query.json")
        return str(raised.value)

    assert error("WARNING: something\n{}").startswith("query.json: is not JSON: Expecting value")
    assert error("[]") == "query.json: must be a JSON object"
    assert error('{"IsAdministrator": "yes"}') == (
        'query.json: IsAdministrator: must be true or false, not "yes"'
    )
    assert error('{"IsAdministrator": true, "Services": [{"Name": 3}]}') == (
        "query.json: Services[0].Name: must be a string, not 3"
    )
    assert error('{"IsAdministrator": true, "Drivers": ["a", {}]}') == (
        "query.json: Drivers[1]: must be a string, not {}"
    )
    assert error('{"IsAdministrator": true, "DefenderStatus": [1]}') == (
        "query.json: DefenderStatus: must be an object or null, not [1]"
    )

    def field_error(section: str, values: dict[str, object]) -> str:
        report = json.loads(sample("defender-admin-none"))
        report[section] = {**report[section], **values}
        with pytest.raises(AdvisorError) as raised:
            defender_status(parse_snapshot(json.dumps(report), "query.json"))
        return str(raised.value)

    assert field_error("DefenderStatus", {"AMRunningMode": 3}) == (
        "query.json: DefenderStatus.AMRunningMode: must be a string or null, not 3"
    )
    assert field_error("DefenderStatus", {"AntivirusEnabled": "True"}) == (
        'query.json: DefenderStatus.AntivirusEnabled: must be true, false or null, not "True"'
    )
    assert field_error("DefenderPreference", {"ExclusionPath": ["C:\\x", 1]}) == (
        "query.json: DefenderPreference.ExclusionPath[1]: must be a string, not 1"
    )


def test_the_advisor_reports_unreadable_defender_output_instead_of_failing() -> None:
    report = json.loads(sample("defender-admin-none"))
    report["DefenderPreference"]["ExclusionPath"] = 42
    windows = parse_snapshot(json.dumps(report), "query.json")
    advice = assemble(HOME, Observations(windows=windows), EXECUTABLES, None, ENVIRONMENT)
    (defender,) = advice.assessments
    assert {c.state for c in defender.coverage} == {CoverageState.UNKNOWN}
    assert defender.coverage[0].detail == (
        "Defender's report does not read: query.json: DefenderPreference.ExclusionPath[0]: "
        "must be a string, not 42"
    )

    garbled = PowerShell(Completed(0, "<not json>"))
    seen = observe(platform="win32", runner=garbled)
    assert seen.windows is None
    assert seen.not_checked[0].startswith(
        "Windows: powershell.exe output: is not JSON: Expecting value"
    )
    failing = observe(platform="win32", runner=PowerShell(Completed(127, "", "not found")))
    assert "Windows: powershell.exe failed: not found" in failing.not_checked


def test_real_time_protection_off_is_a_note_and_edr_exclusions_are_central() -> None:
    report = json.loads(sample("defender-admin-excluded"))
    report["DefenderStatus"]["RealTimeProtectionEnabled"] = False
    report["Services"].append({"Name": "Sense", "Status": "Running"})
    seen = observed(parse_snapshot(json.dumps(report), "query.json"))
    advice = assemble(HOME, seen, EXECUTABLES, None, ENVIRONMENT)
    defender, endpoint = advice.assessments
    assert defender.notes[0] == (
        "Real-time protection is off: Defender is not scanning files on access now."
    )
    assert endpoint.detection.product.key == "defender-for-endpoint"
    assert endpoint.coverage[0].state is CoverageState.MANAGED_CENTRALLY
    assert endpoint.notes == (
        "Ask for the exclusions in the Microsoft Defender portal; the EDR sensor does not "
        "honour Defender Antivirus exclusions.",
    )
    assert [r.target for r in advice.recommendations] == [Target.FOLDER] * 4 + [Target.PROCESS] * 2
