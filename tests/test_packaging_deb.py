"""The Debian package, built by installer/deb.py from a stand-in for the frozen folder (real ELF
programs and a library only the manager would load), unpacked with dpkg -x and read with
dpkg-deb; and its maintainer scripts run against a recording systemctl in a mount namespace of
their own, where /run and /etc/systemd/system are scratch folders. scripts/smoke-frozen does the
same with the real build."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from installer import deb, layout
from tests.packaging_support import ensure_packaging_tools

VERSION = "1.2.3rc1"
# A system library that only Qt's X11 plugin would load: what the manager alone needs.
X11_LIBRARY = "libxcb-icccm.so.4"  # scripts/ensure-xvfb installs it


@pytest.fixture(scope="module")
def tools() -> None:
    ensure_packaging_tools()


@pytest.fixture(scope="module")
def package(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("deb")
    folder = scratch / layout.FOLDER
    qt = folder / "_internal" / "PySide6" / "Qt" / "lib"
    qt.mkdir(parents=True)
    for program in layout.PROGRAMS:
        shutil.copy(shutil.which("true") or "/bin/true", folder / program)
    shutil.copy(system_library(X11_LIBRARY), qt / X11_LIBRARY)
    (folder / "_internal" / "base_library.zip").write_bytes(b"stand-in")
    return deb.build(folder, scratch / "out", VERSION)


def system_library(name: str) -> Path:
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        if line.strip().startswith(name + " "):
            return Path(line.rsplit("=> ", 1)[1])
    raise AssertionError(f"{name} is not installed (scripts/ensure-xvfb installs it)")


@pytest.fixture(scope="module")
def unpacked(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg", "-x", package, root], check=True)
    return root


def field(package: Path, name: str) -> str:
    done = subprocess.run(["dpkg-deb", "-f", package, name], capture_output=True, text=True)
    return done.stdout.strip()


def test_the_control_file_names_the_package_and_what_it_needs(package: Path) -> None:
    assert package.name == f"{layout.DEB_PACKAGE}_1.2.3~rc1_{deb.architecture()}.deb"
    assert field(package, "Package") == layout.DEB_PACKAGE
    assert field(package, "Version") == "1.2.3~rc1"  # sorts before 1.2.3
    assert "libc6" in field(package, "Depends")
    # What only the manager loads is recommended, so an agent-only server skips X11.
    assert "libxcb1" in field(package, "Recommends")
    assert "libxcb" not in field(package, "Depends")
    assert int(field(package, "Installed-Size")) > 0
    info = subprocess.run(["dpkg-deb", "-I", package], capture_output=True, text=True).stdout
    for script in ("preinst", "prerm", "postinst", "postrm", "md5sums"):
        assert f" {script} " in info


def test_debian_versions_sort_pre_releases_first() -> None:
    assert deb.debian_version("1.2.3") == "1.2.3"
    assert deb.debian_version("1.2.3rc1") == "1.2.3~rc1"
    assert deb.debian_version("2.0b2") == "2.0~b2"
    assert deb.debian_version("2.0.dev4") == "2.0~dev4"
    ordered = subprocess.run(
        ["dpkg", "--compare-versions", "1.2.3~rc1", "lt", "1.2.3"], check=False
    )
    assert ordered.returncode == 0


def test_the_layout_puts_the_folder_under_opt_and_links_the_programs(unpacked: Path) -> None:
    install_root = unpacked / layout.INSTALL_ROOT.lstrip("/")
    for program in layout.PROGRAMS:
        assert os.access(install_root / program, os.X_OK)
        assert os.readlink(unpacked / "usr/bin" / program) == f"{layout.INSTALL_ROOT}/{program}"
    assert (install_root / "_internal/PySide6/Qt/lib" / X11_LIBRARY).is_file()
    for path in (
        f"{deb.SYSTEMD_UNITS}/{layout.AGENT_UNIT}",
        f"usr/share/applications/{layout.MANAGER}.desktop",
        f"usr/share/icons/hicolor/48x48/apps/{layout.MANAGER}.png",
        f"usr/share/icons/hicolor/scalable/apps/{layout.MANAGER}.svg",
        f"usr/share/doc/{layout.DEB_PACKAGE}/copyright",
        f"usr/share/doc/{layout.DEB_PACKAGE}/README.Debian",
    ):
        assert (unpacked / path).is_file(), path


def test_files_belong_to_root_and_nobody_else_can_write_them(package: Path, unpacked: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", package], capture_output=True, text=True).stdout
    assert {line.split()[1] for line in listing.splitlines()} == {"root/root"}
    for path in unpacked.rglob("*"):
        if not path.is_symlink():
            assert not path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), path


def test_md5sums_match_the_files(package: Path, unpacked: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", package, tmp_path / "control"], check=True)
    lines = (tmp_path / "control" / "md5sums").read_text().splitlines()
    assert len(lines) == sum(1 for p in unpacked.rglob("*") if p.is_file() and not p.is_symlink())
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.md5((unpacked / name).read_bytes()).hexdigest() == digest, name


def test_systemd_accepts_the_agent_template_unit(unpacked: Path, tmp_path: Path) -> None:
    """systemd-analyze also checks that ExecStart's program exists: the copy it reads names the
    program where dpkg -x put it."""
    unit = (unpacked / deb.SYSTEMD_UNITS / layout.AGENT_UNIT).read_text()
    program = f"{layout.INSTALL_ROOT}/{layout.CLI}"
    assert f'ExecStart={program} agent "--instance=%I" --noninteractive' in unit
    assert "KillMode=process" in unit  # an upgrade's restart leaves scripts running
    copy = tmp_path / layout.AGENT_UNIT
    copy.write_text(unit.replace(program, str(unpacked / program.lstrip("/"))))
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", copy], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr


def test_the_desktop_entry_is_valid_and_starts_the_installed_manager(unpacked: Path) -> None:
    entry = unpacked / f"usr/share/applications/{layout.MANAGER}.desktop"
    validated = subprocess.run(["desktop-file-validate", entry], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    text = entry.read_text()
    assert f"Exec=/usr/bin/{layout.MANAGER}\n" in text and f"Icon={layout.MANAGER}\n" in text


# --- maintainer scripts -------------------------------------------------------------------------

FAKE_SYSTEMCTL = """\
#!/bin/sh
echo "systemctl $*" >>"$FAKE/calls"
case "$1" in
    list-units) cat "$FAKE/running-template-units" ;;
    is-active) if grep -qx "$2" "$FAKE/active"; then echo active; else echo inactive; exit 3; fi ;;
esac
"""
FAKE_INVOKE = """\
#!/bin/sh
echo "deb-systemd-invoke $*" >>"$FAKE/calls"
"""


def run_scripts(
    package: Path, tmp_path: Path, steps: list[list[str]], *, systemd: bool = True
) -> tuple[list[str], list[str]]:
    """Run maintainer scripts in order, in a mount namespace of their own (inside a user
    namespace, so no more rights are needed than the test has) whose /run is empty (and says
    systemd runs when `systemd`) and whose /etc/systemd/system holds two units that `tentacle
    service --install` wrote (one running) and one of another program (running). Returns the
    systemctl and deb-systemd-invoke calls, and the agents still listed to be started again."""
    scripts = tmp_path / "scripts"
    subprocess.run(["dpkg-deb", "-e", package, scripts], check=True)
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("deb-systemd-invoke", FAKE_INVOKE)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    (fake / "running-template-units").write_text(
        "tentacle@Web.service loaded active running Tentacle deployment agent (instance Web)\n"
    )
    (fake / "active").write_text("Build.service\npostgresql.service\n")
    (fake / "calls").touch()
    units = tmp_path / "units"
    units.mkdir()
    agent = f"ExecStart={layout.INSTALL_ROOT}/{layout.CLI} agent --instance="
    (units / "Build.service").write_text(f"[Service]\n{agent}Build --noninteractive\n")
    (units / "Idle.service").write_text(f"[Service]\n{agent}Idle --noninteractive\n")
    (units / "postgresql.service").write_text("[Service]\nExecStart=/usr/bin/postgres\n")
    calls = " ".join(f'sh "{scripts}/{step[0]}" {" ".join(step[1:])};' for step in steps)
    driver = textwrap.dedent(f"""\
        set -e
        mount -t tmpfs tmpfs /run
        {"mkdir -p /run/systemd/system" if systemd else ":"}
        mount --bind "{units}" /etc/systemd/system
        export PATH="{fake}:$PATH" FAKE="{fake}"
        {calls}
        if [ -e /run/tentacle-manager/agents-to-restart ]; then
            sort /run/tentacle-manager/agents-to-restart >"{fake}/left-over"
        fi
    """)
    done = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", driver],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    left_over = fake / "left-over"
    listed = left_over.read_text().splitlines() if left_over.exists() else []
    return (fake / "calls").read_text().splitlines(), listed


def test_an_upgrade_stops_the_running_agents_and_starts_them_again(
    package: Path, tmp_path: Path
) -> None:
    steps = [
        ["prerm", "upgrade", "1.2.4"],
        ["preinst", "upgrade", VERSION],
        ["postinst", "configure", VERSION],
    ]
    calls, listed = run_scripts(package, tmp_path, steps)
    invoked = [call for call in calls if call.startswith("deb-systemd-invoke")]
    assert invoked == [
        "deb-systemd-invoke stop tentacle@Web.service",
        "deb-systemd-invoke stop Build.service",
        # preinst finds them running still: the fake systemctl does not stop anything
        "deb-systemd-invoke stop tentacle@Web.service",
        "deb-systemd-invoke stop Build.service",
        "deb-systemd-invoke start Build.service",
        "deb-systemd-invoke start tentacle@Web.service",
    ]
    assert "systemctl daemon-reload" in calls
    assert not any("postgresql" in call or "Idle" in call for call in invoked)
    assert listed == []


def test_a_failed_upgrade_starts_the_agents_the_new_version_stopped(
    package: Path, tmp_path: Path
) -> None:
    steps = [["prerm", "upgrade", "1.2.4"], ["postinst", "abort-upgrade", "1.2.4"]]
    calls, listed = run_scripts(package, tmp_path, steps)
    assert [call for call in calls if " start " in call] == [
        "deb-systemd-invoke start Build.service",
        "deb-systemd-invoke start tentacle@Web.service",
    ]
    assert listed == []


def test_removal_stops_the_agents_and_leaves_them_installed(package: Path, tmp_path: Path) -> None:
    calls, listed = run_scripts(package, tmp_path, [["prerm", "remove"], ["postrm", "purge"]])
    assert [call for call in calls if call.startswith("deb-systemd-invoke")] == [
        "deb-systemd-invoke stop tentacle@Web.service",
        "deb-systemd-invoke stop Build.service",
    ]
    assert not any("disable" in call for call in calls)
    assert calls[-1] == "systemctl daemon-reload"
    # Installed again before a reboot, the package starts them again.
    assert listed == ["Build.service", "tentacle@Web.service"]


def test_without_systemd_the_scripts_do_nothing(package: Path, tmp_path: Path) -> None:
    steps = [
        ["prerm", "upgrade", "1.2.4"],
        ["postinst", "configure", VERSION],
        ["postrm", "remove"],
    ]
    assert run_scripts(package, tmp_path, steps, systemd=False) == ([], [])
