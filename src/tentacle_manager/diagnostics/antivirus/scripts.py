"""The artefacts a person copies or saves: a PowerShell script (with -DryRun, and its undo
twin) for Defender, a clamd.conf snippet for ClamAV, and a Markdown request pack for the
security team that owns a centrally managed EDR.

Every path goes into them verbatim, so quoting is each format's own:

- PowerShell: single-quoted strings, in which only quote characters are special. PowerShell
  treats the typographic single quotes (U+2018 to U+201B) as quotes too, so each of them is
  doubled like the ASCII one.
- clamd.conf: clamd takes a value to the end of the line and, when it starts with `"`, cuts it
  at the line's last `"`; so every value is put in double quotes, which keeps leading or
  trailing blanks and quotes inside intact. Lines are kept within clamd's 511-character read.
  ExcludePath is a POSIX extended regular expression, so the path is escaped for that.
- Markdown: paths in code spans fenced by more backticks than they contain; `|` escaped in
  table cells.

The .ps1 files are written with a UTF-8 byte order mark, without which Windows PowerShell 5.1
reads a script in the ANSI code page and garbles non-ASCII paths.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from tentacle_manager.agent.process.shell import powershell_literal
from tentacle_manager.diagnostics.antivirus.advisor import Advice
from tentacle_manager.diagnostics.antivirus.clamd import LINE_LIMIT
from tentacle_manager.diagnostics.antivirus.coverage import CoverageState
from tentacle_manager.diagnostics.antivirus.errors import AdvisorError
from tentacle_manager.diagnostics.antivirus.products import Exclusions
from tentacle_manager.diagnostics.antivirus.recommendations import (
    FIRST,
    PROCESS_CAVEATS,
    THEN,
    AgentAccount,
    Recommendation,
    Target,
    is_windows_path,
    user_exclusion,
    validate_path,
)

DEFENDER_SCRIPT = "defender-exclusions.ps1"
DEFENDER_UNDO_SCRIPT = "defender-exclusions-undo.ps1"
CLAMD_SNIPPET = "clamd-exclusions.conf"
REQUEST_PACK = "exclusion-request.md"

_ERE_SPECIAL = re.compile(r"([\\.\[\](){}*+?|^$])")
ELEVATION_CHECK = (
    "$identity = [Security.Principal.WindowsIdentity]::GetCurrent()",
    "$administrator = [Security.Principal.WindowsBuiltInRole]::Administrator",
    "if (-not $DryRun -and -not ([Security.Principal.WindowsPrincipal]$identity).IsInRole("
    "$administrator)) {",
    "    throw 'Run this script as administrator, or with -DryRun to see what it would do.'",
    "}",
)
_PRIORITY_WORDS = {FIRST: "1 (first)", THEN: "2 (if problems remain)"}


def clamd_value(text: str) -> str:
    return f'"{text}"'


def ere_escape(text: str) -> str:
    return _ERE_SPECIAL.sub(r"\\\1", text)


def markdown_code(text: str) -> str:
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


# --- Defender ------------------------------------------------------------------------------------


def defender_script(
    home: PurePath, recommendations: Sequence[Recommendation], *, undo: bool = False
) -> str:
    """Add (or, with `undo`, remove) the recommendations as Defender exclusions; the script's
    -DryRun switch prints what it would change and changes nothing."""
    if not is_windows_path(home):
        raise AdvisorError("home", f"Defender exclusions take Windows paths, not {str(home)!r}")
    _validate(home, recommendations)
    cmdlet, done, would = (
        ("Remove-MpPreference", "Removed", "Would remove")
        if undo
        else ("Add-MpPreference", "Added", "Would add")
    )
    purpose = (
        [
            f"# Removes the Microsoft Defender Antivirus exclusions that {DEFENDER_SCRIPT} adds",
            "# for this Tentacle home; one that existed before that script ran is removed too:",
            f"#   {home}",
        ]
        if undo
        else [
            "# Microsoft Defender Antivirus exclusions for this Tentacle home:",
            f"#   {home}",
            "# Each added exclusion logs event 5007, and security monitoring flags",
            "# Add-MpPreference with -ExclusionPath or -ExclusionProcess (Sigma): tell your",
            "# security team first. Process exclusions, as Microsoft documents them:",
            *(f"# - {caveat}" for caveat in PROCESS_CAVEATS),
        ]
    )
    lines = [
        *purpose,
        "# Run it in an elevated PowerShell session; -DryRun prints what it would change and",
        "# changes nothing.",
        "param([switch]$DryRun)",
        "$ErrorActionPreference = 'Stop'",
        *_powershell_list("paths", [r for r in recommendations if r.target is Target.FOLDER]),
        *_powershell_list("processes", [r for r in recommendations if r.target is Target.PROCESS]),
        *ELEVATION_CHECK,
        *_powershell_loop("path", "paths", "ExclusionPath", cmdlet, done, would),
        *_powershell_loop("process", "processes", "ExclusionProcess", cmdlet, done, would),
    ]
    return "\n".join(lines) + "\n"


def _validate(home: PurePath, recommendations: Sequence[Recommendation]) -> None:
    """A newline in a path would start a line of code or config of its own."""
    validate_path("home", home)
    for recommendation in recommendations:
        validate_path(recommendation.target.value, recommendation.path)


def _powershell_list(name: str, recommendations: Sequence[Recommendation]) -> list[str]:
    if not recommendations:
        return [f"${name} = @()"]
    items = [f"    {powershell_literal(str(r.path))}" for r in recommendations]
    return [f"${name} = @(", *items, ")"]


def _powershell_loop(
    item: str, items: str, parameter: str, cmdlet: str, done: str, would: str
) -> list[str]:
    return [
        f"foreach (${item} in ${items}) {{",
        f'    if ($DryRun) {{ Write-Output "{would} {item} exclusion: ${item}"; continue }}',
        f"    {cmdlet} -{parameter} ${item}",
        f'    Write-Output "{done} {item} exclusion: ${item}"',
        "}",
    ]


# --- ClamAV --------------------------------------------------------------------------------------


def clamd_snippet(
    home: PurePath,
    recommendations: Sequence[Recommendation],
    *,
    config: Path | None,
    account: AgentAccount | None,
) -> str:
    """Lines to add to clamd.conf (`config`, the file clamd uses, when known)."""
    if is_windows_path(home):
        raise AdvisorError("home", f"clamd.conf takes Linux paths, not {str(home)!r}")
    _validate(home, recommendations)
    folders = [PurePosixPath(r.path) for r in recommendations if r.target is Target.FOLDER]
    target = str(config) if config is not None else "the clamd.conf clamd uses"
    lines = [
        "# ClamAV exclusions for this Tentacle home:",
        f"#   {home}",
        f"# Add these lines to {target}, then restart clamd and clamonacc:",
        "# both read the file only when they start.",
        "# On-access scanning (clamonacc): each folder and its sub-directories.",
        *(f"OnAccessExcludePath {clamd_value(str(folder))}" for folder in folders),
        "# clamd's own scans (clamdscan): ExcludePath takes a regular expression.",
        *(f"ExcludePath {clamd_value(f'^{ere_escape(str(folder))}(/|$)')}" for folder in folders),
        "# ClamAV cannot exclude a program, only a user. This line would skip every file the",
        "# agent's user opens, its scripts' files included, so it is left for you to decide:",
        "# " + user_exclusion(account, "<the agent's user>"),
    ]
    for line in lines:
        if len(line) + 1 > LINE_LIMIT:
            raise AdvisorError(
                "home", f"is too long for a clamd.conf line ({LINE_LIMIT} characters): {line!r}"
            )
    return "\n".join(lines) + "\n"


# --- the request pack ----------------------------------------------------------------------------


def request_pack(advice: Advice, host: str) -> str:
    """Markdown for the security team: what to exclude and why, what is on the host, what each
    exclusion looks like to their monitoring, and how to check it worked."""
    folders = [r for r in advice.recommendations if r.target is Target.FOLDER]
    programs = [r for r in advice.recommendations if r.target is Target.PROCESS]
    lines = [
        f"# Anti-virus exclusion request: Tentacle agent on {host}",
        "",
        f"The Tentacle deployment agent with its home at {markdown_code(str(advice.home))} runs "
        "deployment scripts that write, execute and delete many small files. On-access "
        "scanning of its folders slows those scripts down and can make them hang. Octopus "
        "Deploy's troubleshooting guide recommends excluding the folders below, with their "
        "sub-directories.",
        "",
        "## Security products found on this host",
        "",
        *_products_table(advice),
        "",
        "## Folder exclusions requested (with sub-directories)",
        "",
        "| Priority | Folder | Why |",
        "| --- | --- | --- |",
        *(
            f"| {_PRIORITY_WORDS[r.priority]} | {_cell(markdown_code(str(r.path)))} | "
            f"{_cell(r.reason)} |"
            for r in folders
        ),
        "",
        "## Process exclusions requested (full paths)",
        "",
        "Only if the folder exclusions are not enough. Please exclude these by full path, not "
        "by image name: an image name matches every program of that name, wherever it is.",
        "",
        "| Program | Why |",
        "| --- | --- |",
        *(f"| {_cell(markdown_code(str(r.path)))} | {_cell(r.reason)} |" for r in programs),
        "",
        "What a process exclusion does and does not do (Microsoft's documentation):",
        "",
        *(f"- {caveat}" for caveat in advice.caveats),
        "",
        "## Current state on this host",
        *_coverage_sections(advice),
        *(
            ["", "Not checked:", ""] + [f"- {note}" for note in advice.not_checked]
            if advice.not_checked
            else []
        ),
        "",
        "## What the change will look like to your monitoring",
        "",
        *(
            f"- **{a.detection.product.name}**: {a.detection.product.alerts}"
            for a in advice.assessments
        ),
        "- Whatever the product, an exclusion is a reduction of protection and may be flagged "
        "as such in a security review.",
        "",
        "## How to check the result",
        "",
        "- `tentacle antivirus --measure` on this host times a canary workload (scripts "
        "written, made executable, run and deleted) in the Work folder against a folder "
        "outside it. Once Work is excluded it should not be slower than the other folder.",
        *(
            ["- Microsoft Defender: `MpCmdRun.exe -CheckExclusion -path <path>` as administrator."]
            if is_windows_path(advice.home)
            else []
        ),
    ]
    return "\n".join(lines) + "\n"


def _products_table(advice: Advice) -> list[str]:
    if not advice.assessments:
        return [
            "No security product was detected. Products managed centrally can still hide "
            "from the probes; the exclusions below apply to them too."
        ]
    rows = [
        f"| {_cell(a.detection.product.name)} | "
        + "<br>".join(_cell(f"{e.kind.value}: {e.detail}") for e in a.detection.evidence)
        + f" | {_cell(a.detection.product.where)} |"
        for a in advice.assessments
    ]
    return ["| Product | Evidence | Where its exclusions are made |", "| --- | --- | --- |", *rows]


def _coverage_sections(advice: Advice) -> list[str]:
    lines: list[str] = []
    for assessment in advice.assessments:
        lines += [
            "",
            f"### {assessment.detection.product.name}",
            "",
            "| Exclusion | State | Detail |",
            "| --- | --- | --- |",
            *(
                f"| {_cell(markdown_code(str(r.path)))} | {c.state.value} | {_cell(c.detail)} |"
                for r, c in zip(advice.recommendations, assessment.coverage, strict=True)
            ),
            *([""] + [f"- {note}" for note in assessment.notes] if assessment.notes else []),
        ]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# --- writing them --------------------------------------------------------------------------------


def write_artefacts(advice: Advice, folder: Path, host: str | None = None) -> list[Path]:
    """Write the artefacts that fit the home's OS into `folder` (made if missing): the Defender
    scripts for a Windows home (only the exclusions Defender does not have yet), the clamd.conf
    snippet for a Linux one, and the request pack for both."""
    texts: dict[str, str] = {}
    if is_windows_path(advice.home):
        wanted = _not_yet_in_defender(advice)
        texts[DEFENDER_SCRIPT] = defender_script(advice.home, wanted)
        texts[DEFENDER_UNDO_SCRIPT] = defender_script(advice.home, wanted, undo=True)
    else:
        texts[CLAMD_SNIPPET] = clamd_snippet(
            advice.home,
            advice.recommendations,
            config=advice.clamd_config,
            account=advice.account,
        )
    texts[REQUEST_PACK] = request_pack(advice, host or socket.gethostname())
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = folder / name
            path.write_text(text, encoding="utf-8-sig" if name.endswith(".ps1") else "utf-8")
            written.append(path)
    except OSError as error:
        raise AdvisorError(
            str(folder), f"cannot be written: {error.strerror}. Choose a folder you can write to."
        ) from None
    return written


def _not_yet_in_defender(advice: Advice) -> list[Recommendation]:
    for assessment in advice.assessments:
        if assessment.detection.product.exclusions is Exclusions.DEFENDER:
            return [
                r
                for r, c in zip(advice.recommendations, assessment.coverage, strict=True)
                if c.state is not CoverageState.SET
            ]
    return list(advice.recommendations)
