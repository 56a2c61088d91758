"""Builds the Debian package from the frozen folder: `python -m installer.deb`.

The package holds the folder as /opt/tentacle-manager/, links to both programs in /usr/bin, the
systemd template unit for agents, the manager's desktop entry and icons, and maintainer scripts
that stop running agents before an upgrade changes their files and start them afterwards
(installer/debian/agents.sh). dpkg-shlibdeps works out the Debian libraries the folder needs:
what the agent and the command line load is Depends, what only Qt loads is Recommends, so a
server that only runs agents installs no X11 or Wayland libraries.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from installer import layout

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "debian"
RESOURCES = ROOT / "resources"
SYSTEMD_UNITS = "lib/systemd/system"
MAINTAINER = "Tentacle Manager maintainers <maintainers@tentacle-manager.invalid>"
DESCRIPTION = """\
Install, run and rescue Tentacle deployment agents
 A Python re-imagining of Octopus Deploy's Tentacle: the agent that runs
 deployment scripts under named isolation mutexes (tentacle agent), its
 command line for unattended installs (tentacle), and a desktop manager
 (tentacle-manager). Instances are kept on upgrade and on removal; see
 /usr/share/doc/tentacle-manager/README.Debian."""
# Maintainer scripts that share the agent functions in agents.sh; postrm stands alone.
SHARED_SCRIPTS = ("preinst", "prerm", "postinst")
# Files of the folder that only the manager loads: their libraries are Recommends.
_QT_ONLY = re.compile(r"_internal/(PySide6|shiboken6)/")


class PackagingError(Exception):
    """The package cannot be built; the message says what is missing."""


def debian_version(version: str) -> str:
    """PEP 440 to Debian ordering: pre-releases sort before the release ('~')."""
    version = re.sub(r"(\d)(a|b|rc)(\d+)", r"\1~\2\3", version)
    return re.sub(r"\.dev(\d+)", r"~dev\1", version)


def architecture() -> str:
    return _run(["dpkg", "--print-architecture"]).strip()


def maintainer_script(name: str) -> str:
    body = (ASSETS / name).read_text()
    if name not in SHARED_SCRIPTS:
        return body
    shared = (ASSETS / "agents.sh").read_text()
    return f"#!/bin/sh\nset -e\n\n{shared}\n{body}"


def stage(folder: Path, root: Path) -> None:
    """Lay out the package's files under `root` (its DEBIAN folder included, control aside)."""
    install_root = root / layout.INSTALL_ROOT.lstrip("/")
    shutil.copytree(folder, install_root, symlinks=True)
    binaries = root / "usr/bin"
    binaries.mkdir(parents=True)
    for program in layout.PROGRAMS:
        (binaries / program).symlink_to(f"{layout.INSTALL_ROOT}/{program}")
    _install(ASSETS / layout.AGENT_UNIT, root / SYSTEMD_UNITS / layout.AGENT_UNIT)
    _install(
        ASSETS / f"{layout.MANAGER}.desktop",
        root / f"usr/share/applications/{layout.MANAGER}.desktop",
    )
    icons = root / "usr/share/icons/hicolor"
    for png in sorted((RESOURCES / "icons").glob(f"{layout.MANAGER}-*.png")):
        size = png.stem.rsplit("-", 1)[1]
        _install(png, icons / f"{size}x{size}/apps/{layout.MANAGER}.png")
    _install(RESOURCES / f"{layout.MANAGER}.svg", icons / f"scalable/apps/{layout.MANAGER}.svg")
    documents = root / "usr/share/doc" / layout.DEB_PACKAGE
    for name in ("copyright", "README.Debian"):
        _install(ASSETS / name, documents / name)
    control = root / "DEBIAN"
    control.mkdir()
    for name in (*SHARED_SCRIPTS, "postrm"):
        (control / name).write_text(maintainer_script(name))
        (control / name).chmod(0o755)
    _normalise_modes(root)


def library_dependencies(root: Path) -> dict[str, str]:
    """{"Depends": ..., "Recommends": ...} from dpkg-shlibdeps over every ELF file of the folder.

    Libraries found inside the folder have no Debian package, hence --ignore-missing-info;
    everything else must belong to an installed package, or dpkg-shlibdeps fails."""
    install_root = root / layout.INSTALL_ROOT.lstrip("/")
    elf_files = [path for path in sorted(install_root.rglob("*")) if _is_elf(path)]
    everywhere = [path for path in elf_files if not _QT_ONLY.search(path.as_posix())]
    qt_only = [path for path in elf_files if _QT_ONLY.search(path.as_posix())]
    if not elf_files:
        return {}
    folders = sorted({f"-l{path.parent}" for path in elf_files})
    with tempfile.TemporaryDirectory(prefix="shlibdeps-") as scratch:
        (Path(scratch) / "debian").mkdir()
        (Path(scratch) / "debian/control").write_text(
            f"Source: {layout.DEB_PACKAGE}\n\nPackage: {layout.DEB_PACKAGE}\nArchitecture: any\n"
        )
        command = ["dpkg-shlibdeps", "-O", "--ignore-missing-info", *folders]
        if everywhere:
            command += ["-dDepends", *map(str, everywhere)]
        if qt_only:
            command += ["-dRecommends", *map(str, qt_only)]
        output = _run(command, cwd=Path(scratch))
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("shlibs:") and value:
            fields[key.removeprefix("shlibs:")] = value
    return fields


def control_file(version: str, arch: str, installed_kib: int, dependencies: dict[str, str]) -> str:
    fields = {
        "Package": layout.DEB_PACKAGE,
        "Version": debian_version(version),
        "Architecture": arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_kib),
        **dependencies,
        "Section": "admin",
        "Priority": "optional",
        "Description": DESCRIPTION,
    }
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def build(folder: Path, output_dir: Path, version: str) -> Path:
    missing = [program for program in layout.PROGRAMS if not (folder / program).is_file()]
    if missing:
        raise PackagingError(
            f"{folder} is not the frozen build: {', '.join(missing)} missing. "
            "Run scripts/build-frozen first."
        )
    arch = architecture()
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{layout.DEB_PACKAGE}_{debian_version(version)}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="deb-", dir=output_dir) as scratch:
        root = Path(scratch) / "root"
        stage(folder, root)
        dependencies = library_dependencies(root)
        _write_md5sums(root)
        installed_kib = _disk_usage_kib(root)
        (root / "DEBIAN/control").write_text(
            control_file(version, arch, installed_kib, dependencies)
        )
        _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(target)])
    return target


def _install(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _normalise_modes(root: Path) -> None:
    """Directories 755, files 755 or 644 as their owner may execute them: whatever the umask
    of the machine that built it."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o100
        path.chmod(0o755 if executable else 0o644)


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _write_md5sums(root: Path) -> None:
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative.as_posix()}\n")
    (root / "DEBIAN/md5sums").write_text("".join(lines))
    (root / "DEBIAN/md5sums").chmod(0o644)


def _disk_usage_kib(root: Path) -> int:
    """Installed-Size as dpkg-gencontrol counts it: each file rounded up to a KiB."""
    total = 0
    for path in root.rglob("*"):
        if path.relative_to(root).parts[0] == "DEBIAN":
            continue
        total += 1 if path.is_symlink() or path.is_dir() else -(-path.stat().st_size // 1024)
    return total


def _run(command: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise PackagingError(
            f"{command[0]} is not installed; scripts/ensure-packaging-tools installs it."
        ) from error
    if done.returncode != 0:
        raise PackagingError(f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    from tentacle_manager import __version__

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "dist" / layout.FOLDER)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    try:
        package = build(args.folder, args.output_dir, __version__)
    except PackagingError as error:
        print(f"deb: {error}", file=sys.stderr)
        return 1
    print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
