"""The command line, run as a real program."""

from __future__ import annotations

import os
import subprocess
import sys


def tentacle(*args: str, home) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tentacle_manager.cli.main", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_script_demo_prints_output_and_exits_zero(tmp_path):
    result = tentacle("run-script", "--demo", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hello from the Tentacle Manager script service." in result.stdout
    assert "step 3 of 3" in result.stdout
    assert "exit code 0" in result.stderr
    assert list((tmp_path / "Work").iterdir()) == []  # completed, workspace deleted


def test_run_script_failing_body_exits_one(tmp_path):
    result = tentacle("run-script", "--body", "echo nope >&2; exit 3", home=tmp_path)
    assert result.returncode == 1
    assert "nope" in result.stderr and "exit code 3" in result.stderr


def test_unreadable_file_names_the_option(tmp_path):
    result = tentacle("run-script", "--file", str(tmp_path / "missing.sh"), home=tmp_path)
    assert result.returncode == 1  # a controlled failure: one line, the option named
    assert "--file" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_catalogue_names_every_verb_and_alias_exactly_once():
    """commands.VERB_MODULES lets a command import only its own verb's module; it must agree
    with what the modules define."""
    import pkgutil

    from tentacle_manager.cli import commands, verbs

    defined = {}
    for module in pkgutil.iter_modules(verbs.__path__):
        for verb in getattr(
            commands.importlib.import_module(f"{verbs.__name__}.{module.name}"), "VERBS", []
        ):
            for word in (verb.name, *verb.aliases):
                assert word not in defined, f"{word} defined twice"
                defined[word] = module.name
    assert defined == commands.VERB_MODULES


def test_a_light_command_does_not_load_the_agent_or_the_http_stack():
    probe = (
        "import sys; from tentacle_manager.cli.main import main; main(['version']); "
        "print(); print(sorted(m for m in ('aiohttp', 'pydantic', 'cryptography') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


def test_service_for_every_instance_is_only_for_start_stop_and_restart(tmp_path):
    """Reference behaviour 37."""
    result = subprocess.run(
        [sys.executable, "-m", "tentacle_manager.cli.main", "service", "--install", "--instance=*"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TentacleMachineConfigurationHomeDirectory": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "--instance=* can only be used for --start, --stop, and --restart flags"
    )
