"""Smoke test of the built programs as the Debian package installs them:
`python -m installer.smoke [--deb FILE]` (scripts/smoke-frozen).

The package is unpacked with `dpkg -x` into a temporary root and checked (control fields,
layout, the unit as systemd-analyze reads it); then the programs run from the unpacked
/opt/tentacle-manager/, on a sandboxed machine (its own instance index and secret store, as in
tests/test_end_to_end.py):

- `tentacle version`; `create-instance`, `new-certificate`, `configure`;
- the secret store: the explicit owner-only file, and in a private D-Bus session with
  gnome-keyring the Secret Service backend, exactly as the same command run from source names;
- `tentacle agent` in the foreground runs a script for `tentacle run-script`, and the script
  sees none of the bundle's environment (LD_LIBRARY_PATH, _PYI_*); then the same agent as a
  user-mode supervisor service, which the frozen program starts as `tentacle -m ...`;
- the manager on the offscreen, minimal and (under Xvfb) xcb platforms, each plugin loaded from
  the bundle; `--self-test-subprocesses 60` exits 0; Qt's four uses of the trimmed ICU data
  work; a frozen manager names the `tentacle` beside it as the agent program.

Every check prints one line; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from installer import layout
from installer.deb import ROOT, SYSTEMD_UNITS, debian_version
from tentacle_manager import __version__

INSTANCE = f"FrozenSmoke{os.getpid()}"  # the supervisor's state lives under /var/lib for root
KEYRING_BACKEND = "keyring.backends.SecretService.Keyring"
TIMEOUT = 120
ICU_PROBE = """
from PySide6.QtCore import QCollator, QLocale, QStringDecoder, QTimeZone
collator = QCollator(QLocale("de_DE"))
assert collator.compare("apfel", "Äpfel") < 0 < collator.compare("b", "a"), "collation"
assert QLocale("tr_TR").toUpper("i") == "İ", "locale case mapping"
zone = QTimeZone(b"Europe/Berlin")
name = zone.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName, QLocale("en"))
assert zone.isValid() and "Europe" in name, f"time zone name {name!r}"
assert QStringDecoder("UTF-8").isValid(), "UTF-8 codec"
print("icu ok")
"""
AGENT_PROGRAM_PROBE = """
import os
from tentacle_manager.cli.verbs.service import agent_command
from tentacle_manager.setup.plan import tentacle_program
print(agent_command()[0]); print(tentacle_program()[0])
leaked = ("_PYI", "LD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH")
print(*sorted(name for name in os.environ if name.startswith(leaked)))
"""


class SmokeFailure(Exception):
    pass


class Smoke:
    def __init__(self, deb: Path, scratch: Path) -> None:
        self.deb = deb
        self.scratch = scratch
        self.root = scratch / "root"
        self.folder = self.root / layout.INSTALL_ROOT.lstrip("/")
        self.failures: list[str] = []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            "TentacleMachineConfigurationHomeDirectory": str(scratch / "etc"),
            "TENTACLE_SECRET_STORE": "file",
            "HOME": str(scratch / "user"),
            "QT_QPA_PLATFORM": "offscreen",
        }

    def check(self, name: str, step: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = step()
        except (SmokeFailure, AssertionError, subprocess.SubprocessError, OSError) as error:
            self.failures.append(name)
            print(f"smoke: FAIL {name}: {error}", flush=True)
            return
        elapsed = time.perf_counter() - started
        print(f"smoke: ok   {name} ({elapsed:.1f} s){': ' + detail if detail else ''}", flush=True)

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run([str(self.folder / program), *args], env=self.env)

    def tentacle(self, *args: str) -> str:
        return self.run(layout.CLI, *args).stdout

    # --- the package ----------------------------------------------------------------------------

    def package_control(self) -> str:
        fields = {}
        for name in ("Package", "Version", "Depends", "Recommends"):
            fields[name] = run(["dpkg-deb", "-f", str(self.deb), name]).stdout.strip()
        expect(fields["Package"] == layout.DEB_PACKAGE, f"Package is {fields['Package']!r}")
        expect(fields["Version"] == debian_version(__version__), f"Version {fields['Version']}")
        expect("libc6" in fields["Depends"], f"Depends lacks libc6: {fields['Depends']}")
        expect("libxcb1" in fields["Recommends"], "the X11 libraries are not Recommends")
        expect("libxcb" not in fields["Depends"], "an agent-only server would need X11")
        scripts = run(["dpkg-deb", "-I", str(self.deb)]).stdout
        for script in ("preinst", "prerm", "postinst", "postrm"):
            expect(f" {script} " in scripts, f"no {script} maintainer script")
        return f"{fields['Package']} {fields['Version']}"

    def package_layout(self) -> str:
        run(["dpkg", "-x", str(self.deb), str(self.root)])
        for program in layout.PROGRAMS:
            installed = self.folder / program
            expect(os.access(installed, os.X_OK), f"{installed} is not an executable")
            link = self.root / "usr/bin" / program
            expect(
                os.readlink(link) == f"{layout.INSTALL_ROOT}/{program}",
                f"/usr/bin/{program} points to {os.readlink(link)}",
            )
        expected = [
            f"{SYSTEMD_UNITS}/{layout.AGENT_UNIT}",
            f"usr/share/applications/{layout.MANAGER}.desktop",
            f"usr/share/icons/hicolor/256x256/apps/{layout.MANAGER}.png",
            f"usr/share/icons/hicolor/scalable/apps/{layout.MANAGER}.svg",
            f"usr/share/doc/{layout.DEB_PACKAGE}/copyright",
        ]
        for path in expected:
            expect((self.root / path).is_file(), f"{path} is missing")
        tops = sorted(path.name for path in self.root.iterdir())
        expect(tops == ["lib", "opt", "usr"], f"unexpected top-level folders {tops}")
        return f"{folder_size(self.folder) / 2**20:.1f} MB in {layout.INSTALL_ROOT}"

    def unit_verifies(self) -> str:
        """systemd-analyze checks ExecStart's program exists, so the copy it reads names the
        program where dpkg -x put it."""
        unit = (self.root / SYSTEMD_UNITS / layout.AGENT_UNIT).read_text()
        program = f"{layout.INSTALL_ROOT}/{layout.CLI}"
        expect(f"ExecStart={program} agent " in unit, "ExecStart does not run the agent")
        copy = self.scratch / "verify" / layout.AGENT_UNIT
        copy.parent.mkdir()
        copy.write_text(unit.replace(f"ExecStart={program}", f"ExecStart={self.folder}/tentacle"))
        run(["systemd-analyze", "verify", "--man=no", str(copy)])
        return ""

    # --- the command line and the agent -------------------------------------------------------

    def version(self) -> str:
        printed = self.tentacle("version").strip()
        expect(printed == __version__, f"tentacle version printed {printed!r}")
        return printed

    def create_instance(self) -> str:
        home = self.scratch / "home"
        self.tentacle(
            "create-instance",
            f"--instance={INSTANCE}",
            f"--config={self.scratch / 'smoke.config'}",
            f"--home={home}",
        )
        self.tentacle("new-certificate", f"--instance={INSTANCE}")
        self.port = free_port()
        self.tentacle(
            "configure",
            f"--instance={INSTANCE}",
            f"--port={self.port}",
            "--listenIpAddress=127.0.0.1",
        )
        return f"home {home}, port {self.port}"

    def file_secret_store(self) -> str:
        secrets = self.secret_diagnosis()
        expect(secrets["kind"] == "file", f"store kind {secrets['kind']!r}")
        expect(secrets["store"].startswith("owner-only file "), f"store {secrets['store']!r}")
        return secrets["store"]

    def keyring_secret_store(self) -> str:
        """A real Secret Service (gnome-keyring in a private D-Bus session): the frozen program
        must choose it, as the same command from source does."""
        home = self.scratch / "keyring-user"
        runtime = self.scratch / "keyring-runtime"
        for folder in (home, runtime):
            folder.mkdir(mode=0o700)
        env = {k: v for k, v in self.env.items() if k != "TENTACLE_SECRET_STORE"}
        env |= {
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "TentacleMachineConfigurationHomeDirectory": str(self.scratch / "keyring-etc"),
        }
        source = [sys.executable, "-m", "tentacle_manager.cli.main"]
        frozen = [str(self.folder / layout.CLI)]
        selector = f"--instance={INSTANCE}K"
        create = ["create-instance", selector, f"--config={self.scratch / 'keyring.config'}"]
        show = ["show-configuration", selector, "--format=json"]
        script = (
            "printf smoke | gnome-keyring-daemon --unlock --components=secrets >/dev/null\n"
            f"{shell(frozen + create)} >/dev/null\n"
            f"{shell(frozen + show)} > frozen.json\n"
            f"{shell(source + show)} > source.json\n"
        )
        run(["dbus-run-session", "--", "sh", "-ec", script], env=env, cwd=self.scratch)
        reports = {
            name: json.loads((self.scratch / f"{name}.json").read_text())["Tentacle"]["Secrets"]
            for name in ("frozen", "source")
        }
        frozen_secrets = reports["frozen"]
        expect(frozen_secrets["backend"] == KEYRING_BACKEND, f"frozen: {frozen_secrets}")
        expect(frozen_secrets["kind"] == "keyring", f"frozen: {frozen_secrets}")
        same = {key: reports["source"][key] for key in ("backend", "kind", "store")}
        expect(
            same == {key: frozen_secrets[key] for key in same},
            f"source chose {same}, the frozen program {frozen_secrets}",
        )
        return frozen_secrets["store"]

    def secret_diagnosis(self) -> dict[str, str]:
        shown = self.tentacle("show-configuration", f"--instance={INSTANCE}", "--format=json")
        return json.loads(shown)["Tentacle"]["Secrets"]

    def agent_runs_a_script(self) -> str:
        with self.agent_process() as agent:
            self.wait_alive()
            body = (
                "echo smoke-$((6*7)); "
                'echo "library path [${LD_LIBRARY_PATH:-}${LD_LIBRARY_PATH_ORIG:-}]'
                ' bundle [${_PYI_APPLICATION_HOME_DIR:-}${_PYI_ARCHIVE_FILE:-}]"'
            )
            output = self.tentacle("run-script", f"--instance={INSTANCE}", "--body", body)
            expect("smoke-42" in output, f"the script's output is missing:\n{output}")
            given = self.env.get("LD_LIBRARY_PATH", "")
            expect(
                f"library path [{given}] bundle []" in output,
                f"the bundle's environment reached the script:\n{output}",
            )
            agent.send_signal(signal.SIGTERM)
            expect(agent.wait(timeout=60) == 0, f"the agent exited {agent.returncode}")
        return "run-script printed smoke-42"

    @contextlib.contextmanager
    def agent_process(self) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.scratch / "agent.log").open("wb")
        agent = subprocess.Popen(
            [str(self.folder / layout.CLI), "agent", f"--instance={INSTANCE}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield agent
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            log.close()

    def wait_alive(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = subprocess.run(
                [str(self.folder / layout.CLI), "livez", f"--instance={INSTANCE}"],
                env=self.env,
                capture_output=True,
                check=False,
            )
            if alive.returncode == 0:
                return
            time.sleep(0.2)
        raise SmokeFailure("the agent did not come up within 60 s")

    def supervised_agent(self) -> str:
        service = [f"--instance={INSTANCE}", "--manager=supervisor"]
        self.tentacle("service", *service, "--install", "--start")
        try:
            self.wait_alive()
            output = self.tentacle(
                "run-script",
                f"--instance={INSTANCE}",
                "--body",
                "tr '\\0' ' ' </proc/$PPID/cmdline",
            )
            expect(
                f"{self.folder}/{layout.CLI} agent" in output,
                f"the service does not run the frozen agent:\n{output}",
            )
        finally:
            self.run(layout.CLI, "service", *service, "--stop", "--uninstall")
        return "supervisor started the frozen agent"

    # --- the manager ----------------------------------------------------------------------------

    def manager_on(self, platform: str, children: int, *wrapper: str) -> str:
        env = {**self.env, "QT_QPA_PLATFORM": platform, "QT_DEBUG_PLUGINS": "1"}
        command = [
            *wrapper,
            str(self.folder / layout.MANAGER),
            f"--self-test-subprocesses={children}",
        ]
        done = run(command, env=env)
        expect(f"self-test: {children} child processes ran" in done.stdout, done.stdout)
        plugin = f"{self.folder}/_internal/PySide6/Qt/plugins/platforms/libq{platform}.so"
        expect(f'"{plugin}" loaded library' in done.stderr, f"{plugin} was not loaded")
        return f"{platform} plugin from the bundle, {children} children"

    def manager_icu(self) -> str:
        return self.run(layout.MANAGER, "-c", ICU_PROBE).stdout.strip()

    def manager_children(self) -> str:
        """The agent program a frozen manager installs, and what its children inherit."""
        lines = self.run(layout.MANAGER, "-c", AGENT_PROGRAM_PROBE).stdout.split("\n")
        agent, program, inherited = lines[:3]
        expected = str(self.folder / layout.CLI)
        expect([agent, program] == [expected, expected], f"the manager would run {agent}")
        given = "LD_LIBRARY_PATH" if "LD_LIBRARY_PATH" in self.env else ""  # the user's own
        expect(inherited == given, f"children of the manager would inherit {inherited}")
        return expected


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def run(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise SmokeFailure(
            f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}".strip()
        )
    return done


def shell(words: Sequence[str]) -> str:
    return " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def folder_size(folder: Path) -> int:
    """Bytes in the folder's files (symbolic links count as their own size)."""
    return sum(path.lstat().st_size for path in folder.rglob("*") if not path.is_dir())


def newest_deb() -> Path | None:
    found = sorted((ROOT / "dist").glob(f"{layout.DEB_PACKAGE}_*.deb"), key=os.path.getmtime)
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, default=newest_deb(), help="default: newest in dist/")
    args = parser.parse_args(argv)
    if args.deb is None or not args.deb.is_file():
        print("smoke: no package to test; run scripts/build-frozen first", file=sys.stderr)
        return 1
    print(f"smoke: {args.deb} ({args.deb.stat().st_size / 2**20:.1f} MB)", flush=True)
    with tempfile.TemporaryDirectory(prefix="tentacle-smoke-") as scratch:
        smoke = Smoke(args.deb, Path(scratch))
        smoke.check("package control fields", smoke.package_control)
        smoke.check("package layout (dpkg -x)", smoke.package_layout)
        if smoke.failures:
            return 1  # nothing below can run without the unpacked programs
        smoke.check("systemd-analyze verify of the unit", smoke.unit_verifies)
        smoke.check("tentacle version", smoke.version)
        smoke.check("create-instance, new-certificate, configure", smoke.create_instance)
        smoke.check("secret store: owner-only file", smoke.file_secret_store)
        smoke.check("secret store: Secret Service keyring", smoke.keyring_secret_store)
        smoke.check("tentacle agent runs a script", smoke.agent_runs_a_script)
        smoke.check("agent under the user-mode supervisor", smoke.supervised_agent)
        smoke.check("manager offscreen, 60 children", lambda: smoke.manager_on("offscreen", 60))
        smoke.check("manager on the minimal platform", lambda: smoke.manager_on("minimal", 2))
        smoke.check(
            "manager on X11 (Xvfb)",
            lambda: smoke.manager_on("xcb", 2, "xvfb-run", "--auto-servernum"),
        )
        smoke.check("Qt's uses of the trimmed ICU data", smoke.manager_icu)
        smoke.check("the manager's agent program and children", smoke.manager_children)
    if smoke.failures:
        print(f"smoke: {len(smoke.failures)} check(s) failed: {', '.join(smoke.failures)}")
        return 1
    print("smoke: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
