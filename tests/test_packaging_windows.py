"""The Inno Setup recipe cannot be built here, so its paths and flags are checked against the
build instead: the folder and executables tentacle.spec produces, the icon, Start menu entry,
silent installs, upgrades under one AppId, and that nothing of an instance is ever deleted."""

from __future__ import annotations

import ast
import re
from pathlib import PureWindowsPath

from installer import layout
from tests.packaging_support import ROOT

WINDOWS = ROOT / "installer" / "windows"
RECIPE = WINDOWS / "tentacle.iss"


def sections() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"": []}
    current = ""
    for raw in RECIPE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        heading = re.fullmatch(r"\[(\w+)\]", line)
        if heading:
            current = heading.group(1)
            found.setdefault(current, [])
        else:
            found[current].append(line)
    return found


def defines() -> dict[str, str]:
    return dict(re.findall(r'^#define (\w+) "([^"]*)"$', RECIPE.read_text(), re.MULTILINE))


def entries(section: str) -> list[dict[str, str]]:
    """`Name: "value"; Flags: a b` lines as dictionaries, quotes removed."""
    parsed = []
    for line in sections()[section]:
        fields = re.findall(r'(\w+): ("(?:[^"]|"")*"|[^;]*)', line)
        parsed.append({key: value.strip().strip('"') for key, value in fields})
    return parsed


def setup() -> dict[str, str]:
    return dict(line.split("=", 1) for line in sections()["Setup"])


def expand(value: str) -> str:
    for name, replacement in defines().items():
        value = value.replace(f"{{#{name}}}", replacement)
    return value


def resolve(relative: str):
    """A path the recipe gives relative to itself, as a path in this checkout."""
    return (WINDOWS / PureWindowsPath(expand(relative)).as_posix()).resolve()


def test_it_packs_the_folder_and_executables_the_spec_builds() -> None:
    assert resolve(defines()["FrozenFolder"]) == ROOT / "dist" / layout.FOLDER
    assert defines()["Manager"] == f"{layout.MANAGER}.exe"
    assert defines()["Agent"] == f"{layout.CLI}.exe"
    files = entries("Files")
    assert expand(files[0]["Source"]) == rf"..\..\dist\{layout.FOLDER}\*"
    assert files[0]["DestDir"] == "{app}"
    assert {"recursesubdirs", "createallsubdirs", "ignoreversion"} <= set(files[0]["Flags"].split())
    assert (WINDOWS / files[1]["Source"]).is_file()  # agents.ps1, extracted before an upgrade
    assert "dontcopy" in files[1]["Flags"]


def test_the_spec_names_its_outputs_from_the_shared_layout() -> None:
    """tentacle.spec takes the folder and executable names from installer/layout.py, which the
    recipe is checked against above."""
    tree = ast.parse((ROOT / "installer" / "tentacle.spec").read_text())
    names = {
        ast.unparse(keyword.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "COLLECT"
        for keyword in node.keywords
        if keyword.arg == "name"
    }
    assert names == {"layout.FOLDER"}
    programs = {
        ast.unparse(node.args[2])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "executable"
    }
    assert programs == {"layout.CLI", "layout.MANAGER"}


def test_it_installs_per_machine_under_program_files_with_a_fixed_app_id() -> None:
    values = setup()
    assert re.fullmatch(r"\{\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", values["AppId"])
    assert values["DefaultDirName"] == r"{autopf}\Tentacle Manager"
    assert values["PrivilegesRequired"] == "admin"
    assert values["ArchitecturesInstallIn64BitMode"] == "x64compatible"
    assert resolve(values["SetupIconFile"]) == ROOT / "resources" / "tentacle-manager.ico"
    assert resolve(values["SetupIconFile"]).is_file()
    assert expand(values["UninstallDisplayIcon"]) == rf"{{app}}\{layout.MANAGER}.exe"
    assert resolve(values["OutputDir"]) == ROOT / "dist"


def test_it_adds_the_start_menu_entry_and_offers_to_launch_the_manager() -> None:
    (shortcut,) = entries("Icons")
    assert shortcut["Name"].startswith("{autoprograms}\\")
    assert expand(shortcut["Filename"]) == rf"{{app}}\{layout.MANAGER}.exe"
    launch = [e for e in entries("Run") if expand(e["Filename"]).endswith(f"{layout.MANAGER}.exe")]
    assert len(launch) == 1
    # Offered on the last page, not waited for, and never in a silent install.
    assert {"postinstall", "nowait", "skipifsilent"} <= set(launch[0]["Flags"].split())


def test_silent_installs_and_upgrades_never_stop_to_ask() -> None:
    text = RECIPE.read_text()
    assert "MsgBox" not in text and "SuppressibleMsgBox" not in text
    restart = [e for e in entries("Run") if "agents.ps1" in e.get("Parameters", "")]
    assert len(restart) == 1 and "runhidden" in restart[0]["Flags"]
    assert restart[0]["Check"] == "AgentsWereStopped"


def test_nothing_of_an_instance_is_ever_deleted() -> None:
    """Instances live under C:\\ProgramData\\Octopus and wherever their homes were put; the
    only delete is of the program's own _internal folder, before an upgrade copies the new."""
    assert "UninstallDelete" not in sections()
    deleted = [entry["Name"] for entry in entries("InstallDelete")]
    assert deleted == [r"{app}\_internal"]
    assert "DelTree" not in RECIPE.read_text() and "DeleteFile" not in RECIPE.read_text()
    (stop,) = entries("UninstallRun")
    assert expand(stop["Filename"]) == rf"{{app}}\{layout.CLI}.exe"
    assert stop["Parameters"] == "service --instance=* --stop"  # stops; never --uninstall
