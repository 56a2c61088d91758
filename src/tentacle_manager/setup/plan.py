"""From the wizard's answers to the exact commands that set up an instance, and their undo.

The plan is what the review page shows and what the installer runs: the same `tentacle`
verbs an unattended install uses (reference 6.2), so an admin can copy them into a script.
The display masks every secret as ******** (Tentacle Manager shows them in clear, 6.4); the
clear text goes only to the process. Each step says how to undo it, so a failed install can be
rolled back completely, not just unregistered as Tentacle Manager does (6.6).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass

from tentacle_manager.cli.verbs.service import agent_command
from tentacle_manager.platform.firewall import firewall_rule
from tentacle_manager.setup.answers import ProxyAnswers, ProxyMode, SetupAnswers, Style

MASK = "********"
PROGRAM = "tentacle"  # how the display names the program, whatever runs it


@dataclass(frozen=True)
class Step:
    """One command. `undo` runs on rollback once this step has started, and may fail harmlessly
    (it undoes what is there), so a step that failed half-way is undone too."""

    title: str
    argv: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    undo: tuple[tuple[str, ...], ...] = ()
    is_tentacle: bool = True  # argv is a `tentacle` verb: run through this program

    def command(self) -> tuple[str, ...]:
        """What is executed: the clear text."""
        return (*tentacle_program(), *self.argv) if self.is_tentacle else self.argv

    def display(self) -> str:
        """What is shown and copied: the command line with every secret masked."""
        words = (PROGRAM, *self.argv) if self.is_tentacle else self.argv
        return _join(tuple(mask(word, self.secrets) for word in words))

    def undo_steps(self) -> list[Step]:
        return [
            Step(f"Undo: {self.title}", argv, self.secrets, is_tentacle=self.is_tentacle)
            for argv in self.undo
        ]


@dataclass(frozen=True)
class SetupPlan:
    answers: SetupAnswers
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # what the review page must say (no firewall tool, no admin rights)
    unsupported: str = ""  # why this plan cannot be installed here, when it cannot

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.answers.secrets

    def script(self) -> str:
        """The whole plan, one masked command per line, for the review page and its copy."""
        return "\n".join(step.display() for step in self.steps)


def tentacle_program() -> tuple[str, ...]:
    """The `tentacle` program: the frozen executable, or this Python running the CLI."""
    return agent_command()[:-1]  # without the `agent` verb


def plan_setup(answers: SetupAnswers, manager: str, admin: bool) -> SetupPlan:
    """The steps for these answers (checked: raises ProblemsError naming the bad fields)."""
    answers.check()
    selector = ("--instance", answers.instance)
    listening = answers.style is Style.LISTENING
    port = int(answers.listen_port)
    steps = [
        Step(
            "Create the instance",
            ("create-instance", *selector, "--config", str(answers.config_path),
             "--home", str(answers.home)),
            undo=(("delete-instance", *selector),),
        ),
        Step("Create the certificate", ("new-certificate", *selector, "--if-blank")),
        Step("Forget trusted servers", ("configure", *selector, "--reset-trust")),
        Step(
            "Set the folders and how to listen",
            ("configure", *selector, "--app", str(answers.app_dir), "--port", str(port),
             "--noListen", str(not listening),
             *(("--listenIpAddress", "127.0.0.1") if answers.local_only else ())),
        ),
    ]  # fmt: skip
    notes = [] if admin else [
        "Without administrator rights the agent runs under the user-mode supervisor, as you: "
        "it starts when you log in, not with the machine."
    ]  # fmt: skip
    unsupported = ""
    if listening:
        if answers.server_thumbprint.strip():
            thumbprint = answers.server_thumbprint.strip().upper()
            steps.append(
                Step("Trust the Octopus Server", ("configure", *selector, "--trust", thumbprint))
            )
        steps += _firewall(answers, port, notes)
    else:
        steps += _polling(answers, selector)
        unsupported = (
            "This agent only listens: it cannot poll an Octopus Server or register with one "
            "(register-with) yet. Choose Listening, or use Octopus Tentacle for polling."
        )
    steps.append(
        Step(
            "Install and start the service",
            ("service", *selector, "--install", "--stop", "--start", "--manager", manager),
            undo=(("service", *selector, "--stop", "--uninstall", "--manager", manager),),
        )
    )
    return SetupPlan(answers, tuple(steps), tuple(notes), unsupported)


def _firewall(answers: SetupAnswers, port: int, notes: list[str]) -> list[Step]:
    if not answers.firewall_rule or answers.local_only:
        return []
    rule = firewall_rule(answers.instance, port)
    if rule is None:
        notes.append(
            f"No firewall tool was found (netsh or ufw): if a firewall is active, allow "
            f"incoming TCP port {port} yourself."
        )
        return []
    return [
        Step(f"Allow port {port} in {rule.tool}", rule.add, undo=(rule.remove,), is_tentacle=False)
    ]


def _polling(answers: SetupAnswers, selector: tuple[str, ...]) -> list[Step]:
    """The proxy for polling and the registration, as Tentacle Manager builds them."""
    credentials = (
        ("--apiKey", answers.api_key)
        if answers.api_key
        else ("--username", answers.username, "--password", answers.password)
    )
    register = (
        "register-with", *selector, "--server", answers.server_url.strip(),
        "--name", answers.instance, "--comms-style", "TentacleActive",
        "--server-comms-port", answers.server_comms_port.strip(), *credentials,
    )  # fmt: skip
    return [
        Step(
            "Set the polling proxy",
            proxy_argv("polling-proxy", selector, answers.proxy),
            answers.secrets,
        ),
        Step("Register with the Octopus Server", register, answers.secrets),
    ]


def proxy_argv(verb: str, selector: tuple[str, ...], proxy: ProxyAnswers) -> tuple[str, ...]:
    """A `proxy` or `polling-proxy` command for these answers. The username is always given,
    so that clearing it clears it; the password only when typed: empty keeps the stored one."""
    used = proxy.mode is not ProxyMode.NONE
    argv = [verb, *selector, "--proxyEnable", str(used)]
    if proxy.mode is ProxyMode.CUSTOM:
        argv += ["--proxyHost", proxy.host.strip(), "--proxyPort", proxy.port.strip()]
    if used:
        argv += ["--proxyUsername", proxy.username]
    if used and proxy.password:
        argv += ["--proxyPassword", proxy.password]
    return tuple(argv)


def mask(text: str, secrets: tuple[str, ...]) -> str:
    """Every secret replaced by ********, longest first so that one inside another is hidden."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _join(words: tuple[str, ...]) -> str:
    """A command line as this platform's shell would take it."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(words)
    return shlex.join(words)
