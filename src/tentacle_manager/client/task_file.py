"""Load a task, and how to reach its agents, from a small TOML file:

    name = "Deploy web"

    [agents.web1]
    url = "https://127.0.0.1:10933"
    thumbprint = "<40 hex digits>"        # the certificate the agent must present

    [[steps]]
    name = "Stop site"
    agents = ["web1"]
    script = "echo stopping"              # or script_file = "stop.sh", relative to this file
    files = ["site.conf"]                 # optional; copied into the workspace under that name
    isolation = "full"                    # full | none
    mutex = "web"                         # optional
    mutex_timeout = "00:05:00"            # optional; a TimeSpan or seconds; 0 waits forever

The problems found are reported together, each with its field path (`steps[2].agents[0]`,
zero-based) and the rule it broke; the task is only returned when there are none. Rules across
steps (distinct step names) are checked once the steps themselves are valid.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tentacle_manager.client.task import AGENT_NAME, Task, TaskError, problems_of

TOP_LEVEL_FIELDS = ("name", "agents", "steps")
THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")


class TaskFileError(TaskError):
    """A task file that cannot be used; the message starts with the file."""

    def __init__(self, path: Path, problems: dict[str, str]):
        self.path = path
        super().__init__(problems)

    def __str__(self) -> str:
        return f"{self.path}: {super().__str__()}"


class AgentEndpoint(BaseModel):
    """How to reach one agent; a CLI turns it into an HTTPS client with mutual TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    thumbprint: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not AGENT_NAME.match(value):
            raise ValueError(
                "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https":
            raise ValueError("must start with https:// (agents only speak HTTPS)")
        if not parts.hostname:
            raise ValueError("must name a host, as in https://web1.example.com:10933")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be https://host or https://host:port (port 1-65535), no path")
        return value.rstrip("/")

    @field_validator("thumbprint")
    @classmethod
    def _thumbprint(cls, value: str) -> str:
        if not THUMBPRINT.match(value):
            raise ValueError(
                "must be the 40 hexadecimal digits of the agent's certificate thumbprint "
                "(`tentacle show-thumbprint` on the agent prints it)"
            )
        return value.upper()


@dataclass(frozen=True)
class TaskFile:
    path: Path
    task: Task
    agents: Mapping[str, AgentEndpoint]


def load_task_file(path: Path) -> TaskFile:
    document = _read_toml(path)
    problems: dict[str, str] = {}
    for key in document:
        if key not in TOP_LEVEL_FIELDS:
            problems[key] = f"is not a known field (known: {', '.join(TOP_LEVEL_FIELDS)})"
    raw_agents = document.get("agents")
    agents = _agents(raw_agents, problems)
    declared = set(raw_agents) if isinstance(raw_agents, dict) else set()
    data = {key: document[key] for key in ("name", "steps") if key in document}
    if "steps" not in data:
        problems["steps"] = "is required: add at least one [[steps]] table"
    elif isinstance(data["steps"], list):
        base = path.parent
        data["steps"] = [
            _step(index, entry, base, declared, problems) if isinstance(entry, dict) else entry
            for index, entry in enumerate(data["steps"])
        ]
    try:
        task = Task.from_data(data)
    except TaskError as error:
        # The file's own findings are the more precise ones where both name a field.
        problems = {**error.problems, **problems}
    if problems:
        raise TaskFileError(path, problems)
    return TaskFile(path=path, task=task, agents=agents)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise TaskFileError(path, {"(syntax)": str(error)}) from None
    except UnicodeDecodeError:
        raise TaskFileError(path, {"(file)": "is not UTF-8 text"}) from None
    except OSError as error:
        raise TaskFileError(path, {"(file)": f"cannot be read: {error.strerror}"}) from None


def _agents(raw: Any, problems: dict[str, str]) -> dict[str, AgentEndpoint]:
    if raw is None:
        problems["agents"] = (
            "is required: declare each agent as [agents.<name>] with url, thumbprint"
        )
        return {}
    if not isinstance(raw, dict) or not raw:
        problems["agents"] = "must be a table of agents, [agents.<name>], with at least one agent"
        return {}
    agents: dict[str, AgentEndpoint] = {}
    for name, entry in raw.items():
        agent = _agent(name, entry, problems)
        if agent is not None:
            agents[name] = agent
    return agents


def _agent(name: str, entry: Any, problems: dict[str, str]) -> AgentEndpoint | None:
    where = f"agents.{name}"
    if not isinstance(entry, dict):
        problems[where] = "must be a table with url and thumbprint"
        return None
    if "name" in entry:
        problems[f"{where}.name"] = "is not a known field (the table's key is the agent's name)"
        return None
    try:
        return AgentEndpoint.model_validate({**entry, "name": name})
    except ValidationError as error:
        for field, rule in problems_of(error).items():
            problems[where if field == "name" else f"{where}.{field}"] = rule
        return None


def _step(
    index: int, entry: dict[str, Any], base: Path, declared: set[str], problems: dict[str, str]
) -> dict[str, Any]:
    """The step's fields as the task model takes them: files read, names checked."""
    where = f"steps[{index}]"
    data = dict(entry)
    script_file = data.pop("script_file", None)
    if script_file is not None and "script" in data:
        problems[f"{where}.script_file"] = "give either 'script' or 'script_file', not both"
    elif script_file is not None:
        contents = _read(base, script_file, f"{where}.script_file", problems)
        data["script"] = _text(contents, f"{where}.script_file", problems)
    elif "script" not in data:
        problems[f"{where}.script"] = (
            "is required: give 'script' (the body) or 'script_file' (a path relative to the "
            "task file)"
        )
    if "files" in data:
        data["files"] = _files(data["files"], base, f"{where}.files", problems)
    if isinstance(data.get("agents"), list):
        for position, name in enumerate(data["agents"]):
            if isinstance(name, str) and name not in declared:
                problems[f"{where}.agents[{position}]"] = (
                    f"agent {name!r} is not declared; add an [agents.{name}] table"
                )
    return data


def _files(raw: Any, base: Path, where: str, problems: dict[str, str]) -> list[dict[str, Any]]:
    """Each path names both the source, next to the task file, and the file in the workspace,
    so it must stay below the task file's folder."""
    if not isinstance(raw, list):
        problems[where] = "must be a list of paths relative to the task file"
        return []
    files = []
    for position, name in enumerate(raw):
        here = f"{where}[{position}]"
        if isinstance(name, str) and (PurePath(name).is_absolute() or ".." in PurePath(name).parts):
            problems[here] = "must be a path below the task file's folder, without '..'"
            continue
        contents = _read(base, name, here, problems)
        if contents is not None:
            files.append({"name": name, "contents": contents})
    return files


def _read(base: Path, name: Any, where: str, problems: dict[str, str]) -> bytes | None:
    """A file named relative to the task file (an absolute path is taken as it is)."""
    if not isinstance(name, str) or not name:
        problems[where] = "must be a path relative to the task file"
        return None
    try:
        return (base / name).read_bytes()
    except OSError as error:
        problems[where] = f"cannot read {base / name}: {error.strerror}"
        return None


def _text(contents: bytes | None, where: str, problems: dict[str, str]) -> str:
    """The script as text. On failure the problem is recorded and an empty body stands in, so
    the task model does not report the same step a second time as missing its script."""
    if contents is None:
        return ""
    try:
        return contents.decode("utf-8")
    except UnicodeDecodeError as error:
        problems[where] = f"is not UTF-8 text (byte {error.start})"
        return ""
