"""Processes that outlived an abandon: tracked, re-killed every few seconds, never forgotten.

Tentacle's abandon (and Azure's "continue after kill attempt") forget the process. Here it stays
listed with its workspace kept, is killed again every `retry_interval`, and leaves the list by
itself once it has died; the list is kept in the ticket's state file, so it survives restarts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import psutil

from tentacle_manager.agent.process.tree import Rung, Signaller, is_alive
from tentacle_manager.agent.workspace.state import TrackedProcess
from tentacle_manager.agent.workspace.workspace import Workspace, WorkspaceDeleteError
from tentacle_manager.contracts import (
    QuarantinedProcess,
    QuarantineEntry,
    ScriptTicket,
    utc_now,
)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Entry:
    ticket: ScriptTicket
    task_id: str
    workspace: Workspace
    processes: list[psutil.Process]
    since: datetime = field(default_factory=utc_now)
    kill_attempts: int = 0
    last_attempt: datetime | None = None
    delete_workspace_when_clear: bool = False

    def public(self) -> QuarantineEntry:
        listed = []
        for process in self.processes:
            try:
                listed.append(
                    QuarantinedProcess(
                        pid=process.pid, name=process.name(), create_time=process.create_time()
                    )
                )
            except psutil.Error:
                continue
        return QuarantineEntry(
            ticket=self.ticket,
            task_id=self.task_id,
            since=self.since,
            processes=listed,
            kill_attempts=self.kill_attempts,
            last_attempt=self.last_attempt,
        )


def tracked(processes: list[psutil.Process]) -> list[TrackedProcess]:
    result = []
    for process in processes:
        try:
            result.append(TrackedProcess(pid=process.pid, create_time=process.create_time()))
        except psutil.Error:
            continue
    return result


def revive(processes: list[TrackedProcess]) -> list[psutil.Process]:
    """The tracked processes that are still the same live processes (pid and start time)."""
    alive = []
    for item in processes:
        try:
            process = psutil.Process(item.pid)
            if abs(process.create_time() - item.create_time) < 0.01 and is_alive(process):
                alive.append(process)
        except psutil.Error:
            continue
    return alive


class Quarantine:
    def __init__(self, signaller: Signaller, retry_interval: float):
        self._signaller = signaller
        self._retry_interval = retry_interval
        self._entries: dict[str, _Entry] = {}

    def add(
        self,
        ticket: ScriptTicket,
        task_id: str,
        workspace: Workspace,
        processes: list[psutil.Process],
    ) -> None:
        self._entries[ticket.key] = _Entry(ticket, task_id, workspace, processes)
        self._persist(self._entries[ticket.key])
        log.warning(
            "Quarantined %d process(es) of abandoned script %s (task %s): %s",
            len(processes),
            ticket,
            task_id,
            [p.pid for p in processes],
        )

    def holds(self, ticket_key: str) -> bool:
        return ticket_key in self._entries

    def entries(self) -> list[QuarantineEntry]:
        return [entry.public() for entry in self._entries.values()]

    def delete_workspace_when_clear(self, ticket: ScriptTicket) -> None:
        entry = self._entries.get(ticket.key)
        if entry is not None:
            entry.delete_workspace_when_clear = True

    def retry(self) -> None:
        """Kill the survivors again; drop entries whose processes have all died."""
        for key, entry in list(self._entries.items()):
            entry.processes = [p for p in entry.processes if is_alive(p)]
            if not entry.processes:
                del self._entries[key]
                self._clear(entry)
                continue
            self._signaller.send(entry.processes, Rung.KILL)
            entry.kill_attempts += 1
            entry.last_attempt = utc_now()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._retry_interval)
            try:
                self.retry()
            except Exception:  # one bad entry must not end the retries for all the others
                log.exception("Retrying quarantined processes failed")

    def _persist(self, entry: _Entry) -> None:
        store = entry.workspace.state
        if store.exists():
            state = store.load()
            state.quarantined = tracked(entry.processes)
            store.save(state)

    def _clear(self, entry: _Entry) -> None:
        log.info("Quarantined processes of script %s have exited", entry.ticket)
        if entry.delete_workspace_when_clear:
            try:
                entry.workspace.delete()
            except WorkspaceDeleteError as error:
                log.warning("%s", error)
            return
        entry.processes = []
        self._persist(entry)
