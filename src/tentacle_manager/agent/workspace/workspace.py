"""One script's folder, <home>/Work/<ticket>/, and everything that lives in it."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tentacle_manager.agent.process import startup_detection
from tentacle_manager.agent.process.shell import Shell
from tentacle_manager.agent.workspace.output_log import LOG_FILE
from tentacle_manager.agent.workspace.script_files import write_script_file
from tentacle_manager.agent.workspace.state import StateStore
from tentacle_manager.contracts import ScriptTicket, StartScriptCommand

WORK_FOLDER = "Work"
STDOUT_FILE = "Output.stdout.raw"
STDERR_FILE = "Output.stderr.raw"


class WorkspaceDeleteError(OSError):
    pass


@dataclass(frozen=True)
class Workspace:
    directory: Path

    @staticmethod
    def for_ticket(work_root: Path, ticket: ScriptTicket) -> Workspace:
        """Folder names use the case-folded ticket, so "AbC" and "abc" share one workspace."""
        return Workspace(work_root / ticket.key)

    @property
    def state(self) -> StateStore:
        return StateStore(self.directory)

    @cached_property
    def stdout_path(self) -> Path:
        return self.directory / STDOUT_FILE

    @cached_property
    def stderr_path(self) -> Path:
        return self.directory / STDERR_FILE

    @cached_property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def bootstrap_path(self, shell: Shell) -> Path:
        return self.directory / shell.bootstrap_name

    def exists(self) -> bool:
        return self.directory.is_dir()

    def prepare(self, command: StartScriptCommand, shell: Shell) -> None:
        """Write the bootstrap script and the request's files into a fresh folder.

        A folder left without a state file (an agent killed mid-preparation) is wiped first:
        its ticket was never acknowledged, so nothing in it belongs to anyone.
        """
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        for script_file in command.files:
            write_script_file(self.directory, script_file)
        body = startup_detection.inject(
            shell.select_body(command), shell.startup_guard(self.directory), self.directory
        )
        self.bootstrap_path(shell).write_bytes(shell.bootstrap_bytes(body))

    def output_started(self) -> bool:
        """The raw output files exist: they are created just before the script's process."""
        return self.stdout_path.exists() or self.stderr_path.exists()

    def discard_raw_output(self) -> None:
        for path in (self.stdout_path, self.stderr_path):
            path.unlink(missing_ok=True)

    def delete(self, attempts: int = 3, pause: float = 0.1) -> None:
        """Remove the folder, retrying briefly (anti-virus often holds a file for a moment)."""
        for attempt in range(attempts):
            try:
                shutil.rmtree(self.directory)
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if attempt == attempts - 1:
                    raise WorkspaceDeleteError(
                        error.errno, f"Could not delete workspace {self.directory}: {error}"
                    ) from error
                time.sleep(pause)
