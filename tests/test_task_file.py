"""Task files: a valid one becomes a task and its agents; every problem in a bad one is
reported at once, naming the file, the field path and the rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tentacle_manager.client.task_file import TaskFileError, load_task_file
from tentacle_manager.contracts import ScriptIsolationLevel

THUMBPRINT = "0123456789abcdef0123456789abcdef01234567"

AGENTS = f"""
[agents.web1]
url = "https://127.0.0.1:10933"
thumbprint = "{THUMBPRINT}"

[agents.web2]
url = "https://web2.example.com/"
thumbprint = "{THUMBPRINT.upper()}"
"""


def write(folder: Path, text: str, name: str = "task.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def problems_in(folder: Path, text: str) -> dict[str, str]:
    path = write(folder, text)
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value.problems


def test_a_valid_file_becomes_a_task_and_its_agents(tmp_path):
    (tmp_path / "deploy.sh").write_text("echo deploying\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "site.conf").write_bytes(b"\x00binary\xff")
    path = write(
        tmp_path,
        'name = "Deploy web"\n'
        + AGENTS
        + """
[[steps]]
name = "Stop site"
agents = ["web1", "web2"]
script = "echo stopping"
isolation = "none"
mutex = "web"
mutex_timeout = "00:05:00"

[[steps]]
name = "Deploy"
agents = ["web1"]
script_file = "deploy.sh"
files = ["conf/site.conf"]
mutex_timeout = 90

[[steps]]
name = "Start site"
agents = ["web2"]
script = "echo starting"
mutex_timeout = 00:01:30
""",
    )
    loaded = load_task_file(path)
    task = loaded.task
    assert task.name == "Deploy web"
    stop, deploy, start = task.steps
    assert (stop.name, stop.agents, stop.script) == ("Stop site", ("web1", "web2"), "echo stopping")
    assert (stop.isolation, stop.mutex) == (ScriptIsolationLevel.NO_ISOLATION, "web")
    assert stop.mutex_timeout == timedelta(minutes=5)
    assert (deploy.script, deploy.isolation) == (
        "echo deploying\n",
        ScriptIsolationLevel.FULL_ISOLATION,
    )
    assert [(f.name, f.contents) for f in deploy.files] == [("conf/site.conf", b"\x00binary\xff")]
    assert (deploy.mutex, deploy.mutex_timeout) == (None, timedelta(seconds=90))
    assert start.mutex_timeout == timedelta(minutes=1, seconds=30)
    assert task.script_task_id(deploy) == "Deploy web/Deploy"
    web1, web2 = loaded.agents["web1"], loaded.agents["web2"]
    assert (web1.name, web1.url, web1.thumbprint) == (
        "web1",
        "https://127.0.0.1:10933",
        THUMBPRINT.upper(),
    )
    assert web2.url == "https://web2.example.com"


def test_a_syntax_error_keeps_the_line_and_column(tmp_path):
    problems = problems_in(tmp_path, 'name = "x"\n[agents.web1\nurl = 1\n')
    assert list(problems) == ["(syntax)"]
    assert "line 2" in problems["(syntax)"] and "column" in problems["(syntax)"]


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(TaskFileError) as caught:
        load_task_file(missing)
    assert str(caught.value) == f"{missing}: (file): cannot be read: No such file or directory"
    (tmp_path / "latin.toml").write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(TaskFileError, match="is not UTF-8 text"):
        load_task_file(tmp_path / "latin.toml")


def test_an_empty_file_lists_what_is_required(tmp_path):
    problems = problems_in(tmp_path, "")
    assert problems["name"] == "is required"
    assert problems["agents"].startswith("is required")
    assert problems["steps"].startswith("is required: add at least one [[steps]]")


def test_unknown_fields_are_errors_wherever_they_are(tmp_path):
    problems = problems_in(
        tmp_path,
        'name = "t"\nversion = 2\n'
        + AGENTS
        + 'port = 1\n\n[[steps]]\nname = "s"\nagents = ["web1"]\nscript = "x"\nscripts = "y"\n',
    )
    assert problems["version"].startswith("is not a known field")
    assert problems["agents.web2.port"] == "is not a known field"
    assert problems["steps[0].scripts"] == "is not a known field"
    assert len(problems) == 3


def test_a_step_naming_an_undeclared_agent_is_an_error(tmp_path):
    problems = problems_in(
        tmp_path,
        'name = "t"\n'
        + AGENTS
        + '[[steps]]\nname = "a"\nagents = ["web1"]\nscript = "x"\n'
        + '[[steps]]\nname = "b"\nagents = ["web2", "db1"]\nscript = "x"\n',
    )
    assert problems == {
        "steps[1].agents[1]": "agent 'db1' is not declared; add an [agents.db1] table"
    }


def test_script_and_script_file_exclude_each_other(tmp_path):
    (tmp_path / "bad.sh").write_bytes(b"echo \xff\n")
    problems = problems_in(
        tmp_path,
        'name = "t"\n'
        + AGENTS
        + '[[steps]]\nname = "both"\nagents = ["web1"]\nscript = "x"\nscript_file = "a.sh"\n'
        + '[[steps]]\nname = "neither"\nagents = ["web1"]\n'
        + '[[steps]]\nname = "missing"\nagents = ["web1"]\nscript_file = "missing.sh"\n'
        + '[[steps]]\nname = "binary"\nagents = ["web1"]\nscript_file = "bad.sh"\n',
    )
    assert problems["steps[0].script_file"] == "give either 'script' or 'script_file', not both"
    assert problems["steps[1].script"].startswith("is required: give 'script'")
    assert problems["steps[2].script_file"] == (
        f"cannot read {tmp_path / 'missing.sh'}: No such file or directory"
    )
    assert problems["steps[3].script_file"] == "is not UTF-8 text (byte 5)"
    assert len(problems) == 4


def test_bad_values_are_all_reported_with_their_paths(tmp_path):
    problems = problems_in(
        tmp_path,
        """
name = "t"

[agents.web1]
url = "http://127.0.0.1:10933"
thumbprint = "abc"

[agents.web2]
url = "https://web2:99999"
thumbprint = "0123456789abcdef0123456789abcdef0123456z"

[agents."bad name"]
url = "https://x"
thumbprint = "0123456789abcdef0123456789abcdef01234567"

[[steps]]
name = "s0"
agents = "web1"
script = "x"
isolation = "partial"
mutex_timeout = "5 minutes"

[[steps]]
name = "s1"
agents = []
script = "x"
mutex = ""
mutex_timeout = -1
files = ["../secret", "/etc/passwd"]

[[steps]]
name = "s2"
agents = ["web1", 3]
script = "x"
""",
    )
    expected = {
        "agents.web1.url": "must start with https://",
        "agents.web1.thumbprint": "40 hexadecimal digits",
        "agents.web2.url": "port 1-65535",
        "agents.web2.thumbprint": "40 hexadecimal digits",
        "agents.bad name": "must be 1-100 letters",
        "steps[0].agents": "valid tuple",
        "steps[0].isolation": "must be 'full' or 'none' (got 'partial')",
        "steps[0].mutex_timeout": "'5 minutes' is not a TimeSpan",
        "steps[1].agents": "must name at least one agent",
        "steps[1].mutex": "at least 1 character",
        "steps[1].mutex_timeout": "must be a number of seconds from 0",
        "steps[1].files[0]": "without '..'",
        "steps[1].files[1]": "without '..'",
        "steps[2].agents[1]": "valid string",
    }
    for field, rule in expected.items():
        assert rule in problems.get(field, ""), (field, problems)
    assert set(problems) == set(expected)


def test_agents_must_be_tables(tmp_path):
    problems = problems_in(
        tmp_path,
        'name = "t"\nagents = ["web1"]\n[[steps]]\nname = "s"\nagents = ["web1"]\nscript = "x"\n',
    )
    assert problems["agents"].startswith("must be a table of agents")
    assert problems["steps[0].agents[0]"].startswith("agent 'web1' is not declared")
    problems = problems_in(
        tmp_path,
        'name = "t"\n[agents]\nweb1 = "https://x"\n[agents.web2]\nname = "w"\nurl = "https://y"\n'
        + f'thumbprint = "{THUMBPRINT}"\n'
        + '[[steps]]\nname = "s"\nagents = ["web1", "web2"]\nscript = "x"\n',
    )
    assert problems == {
        "agents.web1": "must be a table with url and thumbprint",
        "agents.web2.name": "is not a known field (the table's key is the agent's name)",
    }


def test_step_names_must_differ(tmp_path):
    problems = problems_in(
        tmp_path,
        'name = "t"\n'
        + AGENTS
        + "".join(f'[[steps]]\nname = "{n}"\nagents = ["web1"]\nscript = "x"\n' for n in "aba"),
    )
    assert problems == {"steps": "steps[2] and steps[0] are both called 'a'"}
