"""Which of the named packages are installed, asked of dpkg or rpm (whichever this host has).

Only the named packages are asked for, so the answer is quick and the command is the same on
every run. A Debian package that was removed but left its config behind (`rc`) is not
installed: it cannot scan anything.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence

from tentacle_manager.platform.antivirus.records import InstalledPackage, ProbeUnavailable
from tentacle_manager.platform.services.spec import Runner, run_command

DPKG_FORMAT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
RPM_FORMAT = "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"


def package_command(
    names: Sequence[str], which: Callable[[str], str | None] = shutil.which
) -> list[str]:
    if which("dpkg-query"):
        return ["dpkg-query", "-W", f"-f={DPKG_FORMAT}", *names]
    if which("rpm"):
        return ["rpm", "-q", "--qf", RPM_FORMAT, *names]
    raise ProbeUnavailable("packages: neither dpkg-query nor rpm is installed")


def installed_packages(
    names: Sequence[str],
    runner: Runner = run_command,
    which: Callable[[str], str | None] = shutil.which,
) -> list[InstalledPackage]:
    """Both tools exit 1 when some of the names are not installed, and still list the rest."""
    argv = package_command(names, which)
    done = runner(argv)
    if done.returncode not in (0, 1):
        raise ProbeUnavailable(f"packages: {argv[0]} failed: {done.output or done.returncode}")
    return parse_package_list(done.stdout, manager="dpkg" if argv[0] == "dpkg-query" else "rpm")


def parse_package_list(text: str, manager: str) -> list[InstalledPackage]:
    """Lines of the formats above; rpm's "package X is not installed" has no tab and is skipped."""
    found = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        if manager == "dpkg" and not (len(fields) > 2 and fields[2].startswith("ii")):
            continue
        found.append(InstalledPackage(fields[0], fields[1], manager))
    return found
