"""Finding security products: real processes named like products, a real fanotify group, and
the Linux probes' exact commands and parsing of recorded output.

No security product runs on this machine, so the processes are stand-ins: copies of `sleep`
named `clamd` and `falcond`, and a Python program named `clamonacc` (a symlink) that really
holds a fanotify group, which is how on-access scanners hook file access.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tentacle_manager.diagnostics.antivirus import Evidence, EvidenceKind, Observations, detect
from tentacle_manager.diagnostics.antivirus.observations import observe
from tentacle_manager.diagnostics.antivirus.products import PACKAGES
from tentacle_manager.platform.antivirus.audit import (
    LIST_RULES,
    configured_exec_rules,
    loaded_exec_rules,
)
from tentacle_manager.platform.antivirus.fanotify import parse_fdinfo
from tentacle_manager.platform.antivirus.packages import installed_packages
from tentacle_manager.platform.antivirus.records import (
    AuditRule,
    InstalledPackage,
    InstalledService,
    ProbeUnavailable,
)
from tentacle_manager.platform.antivirus.systemd_units import LIST_UNITS, systemd_services
from tentacle_manager.platform.services.spec import Completed

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux probes")

FANOTIFY_HOLDER = textwrap.dedent(
    """
    import ctypes, os, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.fanotify_init(0, os.O_RDONLY)  # FAN_CLASS_NOTIF: it never blocks anyone
    if fd < 0 or libc.fanotify_mark(fd, 1, ctypes.c_uint64(0x20), -100, sys.argv[1].encode()):
        print("fanotify:", os.strerror(ctypes.get_errno()), flush=True)
        sys.exit(1)
    print("ready", fd, flush=True)
    time.sleep(60)
    """
)


class Commands:
    """Stands in for the tools: records each command, answers per program."""

    def __init__(self, **answers: Completed) -> None:
        self.answers = answers
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.commands.append(list(argv))
        return self.answers.get(argv[0].replace("-", "_"), Completed(127, "", "not found"))


@contextlib.contextmanager
def running(*argv: str | Path, **options: object) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([str(a) for a in argv], text=True, **options)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def evidence_of(seen: Observations, key: str) -> list[Evidence]:
    return next((list(d.evidence) for d in detect(seen) if d.product.key == key), [])


def test_real_processes_named_like_products_are_found_with_their_pid_and_image(
    tmp_path: Path,
) -> None:
    for name in ("clamd", "falcond"):
        shutil.copy("/bin/sleep", tmp_path / name)
    with running(tmp_path / "clamd", "60") as clamd, running(tmp_path / "falcond", "60") as falcond:
        seen = observe()
    assert Evidence(EvidenceKind.PROCESS, f"pid {clamd.pid} clamd ({tmp_path / 'clamd'})") in (
        evidence_of(seen, "clamav")
    )
    assert evidence_of(seen, "crowdstrike")[0] == Evidence(
        EvidenceKind.PROCESS, f"pid {falcond.pid} falcond ({tmp_path / 'falcond'})"
    )


def test_a_real_fanotify_group_is_found_and_attributed_to_the_program_holding_it(
    tmp_path: Path,
) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    named = tmp_path / "clamonacc"
    named.symlink_to(os.path.realpath(sys.executable))  # the kernel names a process by its file
    holders = [
        (named, "-c", FANOTIFY_HOLDER, watched),
        (sys.executable, "-c", FANOTIFY_HOLDER, watched),
    ]
    with (
        running(*holders[0], stdout=subprocess.PIPE) as scanner,
        running(*holders[1], stdout=subprocess.PIPE) as stranger,
    ):
        answers = [scanner.stdout.readline().split(), stranger.stdout.readline().split()]  # type: ignore[union-attr]
        if answers[0][0] != "ready":
            pytest.skip(f"fanotify is not available here: {' '.join(answers[0])}")
        seen = observe()
    scanner_fd, stranger_fd = answers[0][1], answers[1][1]
    assert Evidence(
        EvidenceKind.FANOTIFY,
        f"pid {scanner.pid} clamonacc holds fanotify fd {scanner_fd}: 1 mark(s), notification only",
    ) in evidence_of(seen, "clamav")
    stranger_name = Path(sys.executable).name[:15]  # the name it was started by
    assert evidence_of(seen, "fanotify") == [
        Evidence(
            EvidenceKind.FANOTIFY,
            f"pid {stranger.pid} {stranger_name} holds fanotify fd {stranger_fd}: 1 mark(s), "
            "notification only",
        )
    ]


def test_fdinfo_tells_a_blocking_scanner_from_a_notification_listener() -> None:
    group = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nfanotify flags:4 event-flags:8000\n"
    mount = "fanotify mnt_id:1a mflags:0 mask:40010000 ignored_mask:0\n"
    inode = "fanotify ino:3f7e8 sdev:fe00000 mflags:0 mask:20 ignored_mask:0 fhandle-bytes:8\n"
    assert parse_fdinfo(group + mount + inode) == (2, True)  # FAN_OPEN_PERM on a mount
    assert parse_fdinfo(group + inode) == (1, False)
    assert parse_fdinfo(group) == (0, False)
    assert parse_fdinfo("pos:\t0\nflags:\t0100000\nmnt_id:\t24\nino:\t3\n") is None


def test_packages_are_asked_of_dpkg_or_rpm_by_name() -> None:
    dpkg = Commands(
        dpkg_query=Completed(
            1,
            "clamav-daemon\t1.4.6+dfsg-0+deb12u1\tii \nfalcon-sensor\t7.10.0-16303\trc \n",
            "dpkg-query: no packages found matching clamd\n",
        )
    )
    found = installed_packages(PACKAGES, dpkg, which=lambda name: name == "dpkg-query" or None)
    assert dpkg.commands == [
        [
            "dpkg-query",
            "-W",
            "-f=${Package}\\t${Version}\\t${db:Status-Abbrev}\\n",
            "falcon-sensor",
            "clamav-daemon",
            "clamd",
        ]
    ]
    assert found == [InstalledPackage("clamav-daemon", "1.4.6+dfsg-0+deb12u1", "dpkg")]

    rpm = Commands(
        rpm=Completed(
            1,
            "falcon-sensor\t7.10.0-16303.el9\npackage clamav-daemon is not installed\n"
            "clamd\t1.0.7-1.el9\n",
        )
    )
    found = installed_packages(PACKAGES, rpm, which=lambda name: name == "rpm" or None)
    assert rpm.commands == [["rpm", "-q", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n", *PACKAGES]]
    assert [p.name for p in found] == ["falcon-sensor", "clamd"]
    with pytest.raises(ProbeUnavailable, match="neither dpkg-query nor rpm"):
        installed_packages(PACKAGES, rpm, which=lambda name: None)
    with pytest.raises(ProbeUnavailable, match="dpkg-query failed: database locked"):
        installed_packages(
            PACKAGES,
            Commands(dpkg_query=Completed(2, "", "database locked")),
            which=lambda name: name == "dpkg-query" or None,
        )


def test_systemd_units_running_or_not_and_a_host_without_systemd() -> None:
    listing = (
        "clamav-daemon.service loaded active running Clam AntiVirus userspace daemon\n"
        "falcon-sensor.service loaded inactive dead CrowdStrike Falcon Sensor\n"
        "gone.service not-found inactive dead gone.service\n"
        "cron.service loaded active running Regular background program processing daemon\n"
    )
    systemctl = Commands(systemctl=Completed(0, listing))
    units = systemd_services(systemctl)
    assert systemctl.commands == [list(LIST_UNITS)]
    assert LIST_UNITS == (
        "systemctl",
        "list-units",
        "--type=service",
        "--all",
        "--no-legend",
        "--plain",
        "--no-pager",
    )
    assert units == [
        InstalledService("clamav-daemon", "active/running"),
        InstalledService("falcon-sensor", "inactive/dead"),
        InstalledService("cron", "active/running"),
    ]
    found = {d.product.key: d.evidence for d in detect(Observations(services=tuple(units)))}
    assert found == {
        "clamav": (Evidence(EvidenceKind.SERVICE, "clamav-daemon (active/running)"),)
    }  # a stopped service is not evidence of a running product
    container = Commands(
        systemctl=Completed(
            1,
            "",
            "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
            "Failed to connect to bus: Host is down\n",
        )
    )
    with pytest.raises(ProbeUnavailable) as unavailable:
        systemd_services(container)
    assert str(unavailable.value) == (
        "services: systemctl failed: System has not been booted with systemd as init system "
        "(PID 1). Can't operate."
    )


def test_auditd_exec_rules_from_the_kernel_and_from_the_rule_files(tmp_path: Path) -> None:
    loaded = (
        "-a always,exit -F arch=b64 -S execve -F key=exec\n"
        "-a never,exit -F arch=b64 -S execve -F exe=/usr/bin/bash\n"
        "-w /etc/passwd -p wa -k identity\n"
        "-a exit,always -F arch=b32 -S open,execveat -F auid>=1000\n"
    )
    auditctl = Commands(auditctl=Completed(0, loaded))
    rules = loaded_exec_rules(auditctl)
    assert auditctl.commands == [list(LIST_RULES)] and LIST_RULES == ("auditctl", "-l")
    assert rules == [
        AuditRule("auditctl -l", "-a always,exit -F arch=b64 -S execve -F key=exec"),
        AuditRule("auditctl -l", "-a exit,always -F arch=b32 -S open,execveat -F auid>=1000"),
    ]
    with pytest.raises(ProbeUnavailable, match=r"You must be root to run this program\."):
        loaded_exec_rules(
            Commands(auditctl=Completed(1, "", "You must be root to run this program.\n"))
        )

    folder = tmp_path / "rules.d"
    folder.mkdir()
    (folder / "10-base.rules").write_text("-D\n-b 8192\n")
    (folder / "50-exec.rules").write_text("# who runs what\n-a always,exit -S execve -k exec\n")
    (folder / "notes.txt").write_text("-a always,exit -S execve\n")
    main = tmp_path / "audit.rules"
    main.write_text("-a always,exit -F arch=b64 -S all\n")
    assert configured_exec_rules([folder, main, tmp_path / "missing"]) == [
        AuditRule(f"{folder / '50-exec.rules'}:2", "-a always,exit -S execve -k exec"),
        AuditRule(f"{main}:1", "-a always,exit -F arch=b64 -S all"),
    ]
    found = detect(Observations(audit_rules=tuple(configured_exec_rules([folder]))))
    assert [(d.product.key, [e.detail for e in d.evidence]) for d in found] == [
        ("auditd", [f"{folder / '50-exec.rules'}:2: -a always,exit -S execve -k exec"])
    ]


def test_what_could_not_be_looked_at_is_listed(tmp_path: Path) -> None:
    tools = Commands(
        systemctl=Completed(1, "", "Failed to connect to bus: Host is down\n"),
        dpkg_query=Completed(0, "clamav-daemon\t1.4.6\tii \n"),
    )
    seen = observe(runner=tools)
    assert "services: systemctl failed: Failed to connect to bus: Host is down" in seen.not_checked
    assert (
        "audit rules: auditctl -l failed: not found; the rule files were read instead"
        in seen.not_checked
    )
    if shutil.which("dpkg-query"):
        assert seen.packages == (InstalledPackage("clamav-daemon", "1.4.6", "dpkg"),)
    elsewhere = observe(platform="darwin", runner=tools)
    assert elsewhere.not_checked == (
        "services, packages, fanotify and audit rules: not probed on darwin",
    )
    assert elsewhere.processes  # psutil works everywhere
