"""The `tentacle` program's conventions and its instance verbs, run as a real program.

Each command is a real process with its own machine-config home, the file secret store and a
working directory of its own. Commands that share no state run concurrently: every process
pays for the interpreter's start-up, and these tests should stay quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tentacle_manager.instances.config_file import SettingsFile
from tentacle_manager.instances.registry import (
    HOME_OVERRIDE_VARIABLE,
    InstanceRegistry,
    create_instance,
)
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE as SECRET_STORE_VARIABLE

PROGRAM = [sys.executable, "-m", "tentacle_manager.cli.main"]
TIMEOUT = 60
MY_VERBS = {
    *("create-instance", "delete-instance", "list-instances"),
    *("new-certificate", "import-certificate", "show-thumbprint"),
    *("configure", "proxy", "polling-proxy", "show-configuration"),
}


class Cli:
    """The real `tentacle` program over one machine-config home in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.machine_home = root / "machine"
        self.cwd = root / "cwd"
        self.cwd.mkdir(parents=True)
        self.env = {
            **os.environ,
            HOME_OVERRIDE_VARIABLE: str(self.machine_home),
            SECRET_STORE_VARIABLE: "file",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_all(list(args))[0]

    def run_all(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at the same time; results in the order given."""
        started = [
            (
                command,
                subprocess.Popen(
                    [*PROGRAM, *command],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for command in commands
        ]
        results = []
        for command, process in started:
            out, err = process.communicate(timeout=TIMEOUT)
            results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
        return results

    def registry(self) -> InstanceRegistry:
        return InstanceRegistry(self.machine_home)

    def add_instance(self, name: str) -> Path:
        """An instance made by the library, for tests about something else; returns its config."""
        config = self.root / name / f"{name}.config"
        create_instance(self.registry(), instance=name, config=config, cwd=self.cwd)
        return config


def setting(config: Path, key: str) -> str | None:
    return SettingsFile(config).read().get(key)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_the_command_word_and_its_errors_follow_tentacle(cli: Cli) -> None:
    (
        no_command,
        unknown,
        unknown_option,
        bad_format,
        *versions,
    ) = cli.run_all(
        [],
        ["unknown-command"],
        ["version", "--unknown=argument"],
        ["version", "--format=unsupported"],
        ["version"],
        ["--version"],
        ["/VERSION"],
    )
    assert no_command.returncode == 2 and no_command.stderr == ""
    assert no_command.stdout.startswith("Usage: Tentacle <command> [<options>]")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("Command 'unknown-command' is not supported")
    assert unknown.stdout.startswith("See 'Tentacle help'")
    assert unknown_option.returncode == 1 and unknown_option.stdout == ""
    assert "Unrecognized command line arguments: --unknown=argument" in unknown_option.stderr
    assert bad_format.returncode == 1
    assert "The format 'unsupported' is not supported. Try text or json." in bad_format.stderr
    assert [v.returncode for v in versions] == [0, 0, 0]
    assert len({v.stdout for v in versions}) == 1 and versions[0].stdout.strip()


def test_help_as_json_lists_the_instance_verbs_and_describes_trust_files(cli: Cli) -> None:
    general, configure = cli.run_all(
        ["help", "--format=json"], ["configure", "--help", "--format=json"]
    )
    commands = json.loads(general.stdout)["Commands"]
    names = [command["Name"] for command in commands]
    assert names == sorted(names)
    assert set(names) >= MY_VERBS
    assert "run" in next(c for c in commands if c["Name"] == "agent")["Aliases"]
    options = {o["Name"]: o["Description"] for o in json.loads(configure.stdout)["Options"]}
    assert {"instance=VALUE", "config=VALUE", "home=VALUE", "port=VALUE"} <= options.keys()
    assert "certificate file (PEM or DER)" in options["trust=VALUE"]


def test_create_instance_indexes_the_config_sets_home_and_makes_the_admin_certificate(
    cli: Cli,
) -> None:
    empty_text, empty_json = cli.run_all(["list-instances"], ["list-instances", "--format=json"])
    assert (empty_text.stdout, empty_json.stdout) == ("No instances installed", "[]")
    folder = cli.root / "d"
    config = folder / "x.cfg"

    created = cli.run("create-instance", "--instance", "X", "--config", str(config))

    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[:3] == [
        f"Creating empty configuration file: {config}",
        f"Setting home directory to: {folder}",
        "Saving instance: X",
    ]
    index_file = cli.machine_home / "Tentacle" / "Instances" / "x.config"
    assert json.loads(index_file.read_text()) == {
        "Name": "X",
        "ConfigurationFilePath": str(config),
    }
    assert setting(config, "Octopus.Home") == str(folder)
    assert {"Logs", "Work", "Tools", "Files"} <= {p.name for p in folder.iterdir()}
    admin_key = folder / "Certificates" / "admin.key.pem"
    assert (folder / "Certificates" / "admin.cert.pem").is_file()
    assert admin_key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in admin_key.read_bytes()

    as_json, as_text = cli.run_all(["list-instances", "--format=json"], ["list-instances"])
    assert json.loads(as_json.stdout) == [
        {"InstanceName": "X", "ConfigurationFilePath": str(config)}
    ]
    assert as_json.stdout.startswith('[\n  {\n    "InstanceName": "X"')
    assert as_text.stdout == f"Instance 'X' uses configuration '{config}'.\n"


def test_delete_instance_removes_only_the_index_entry_and_ignores_case(cli: Cli) -> None:
    config = cli.add_instance("X")
    home = config.parent

    deleted = cli.run("delete-instance", "--instance=x")

    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted instance: X" in deleted.stdout
    assert cli.registry().list_instances() == []
    assert config.is_file() and (home / "Work").is_dir()


def test_missing_and_ambiguous_instances_fail_with_tentacles_messages(cli: Cli) -> None:
    cli.add_instance("A")
    cli.add_instance("B")

    missing, ambiguous = cli.run_all(["show-thumbprint", "--instance=missing"], ["configure"])

    assert missing.returncode == 1 and missing.stdout == ""
    assert "Instance missing of Tentacle has not been configured" in missing.stderr
    assert "Available instances: A, B." in missing.stderr
    assert ambiguous.returncode == 1
    assert "There is more than one instance of Tentacle configured" in ambiguous.stderr
    assert "Please pass --instance=INSTANCENAME" in ambiguous.stderr
    assert "Traceback" not in missing.stderr + ambiguous.stderr


def test_the_default_instance_is_tentacle_else_the_only_one(cli: Cli, tmp_path: Path) -> None:
    cli.add_instance("Tentacle")
    cli.add_instance("B")
    alone = Cli(tmp_path / "alone")
    alone.add_instance("B")

    chosen_of_two, chosen_alone = (
        json.loads(run.run("show-configuration").stdout)["Octopus"]["Home"] for run in (cli, alone)
    )

    assert chosen_of_two == str(cli.root / "Tentacle")
    assert chosen_alone == str(alone.root / "B")
