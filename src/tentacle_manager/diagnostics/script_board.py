"""The rows of the scripts panel: what each script is, where it stands, and whether it moves.

The panel polls three things at different rates: the script list (every second), each live
script's new output (by log sequence, so only new lines travel), and each live script's
process tree (every few seconds, for the activity column). The board merges them into one
row per ticket; the Qt model only displays rows. Nothing here knows about Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tentacle_manager.contracts import (
    ProcessOutputSource,
    ScriptIsolationLevel,
    ScriptList,
    ScriptPhase,
    ScriptProcessTree,
    ScriptStatusResponse,
    ScriptSummary,
)
from tentacle_manager.diagnostics.activity import Activity, ActivitySample, Verdict, classify

QUARANTINED = "quarantined"  # a row state beyond ScriptPhase: abandoned, processes survive
SERVICE_MESSAGE = "##octopus["  # Tentacle's markers for the server, not output to show


@dataclass(frozen=True)
class ScriptRow:
    ticket: str
    task_id: str
    state: str  # a ScriptPhase value, or "quarantined"
    mutex: str
    level: str
    started: datetime | None
    duration: timedelta | None
    exit_code: int | None
    last_line: str
    activity: Verdict | None
    pid: int | None


@dataclass
class _Seen:
    summary: ScriptSummary
    next_sequence: int = 0
    read: bool = False  # its output has been asked for at least once
    last_line: str = ""
    sample: ActivitySample | None = None
    verdict: Verdict | None = None


@dataclass
class ScriptBoard:
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _quarantined: set[str] = field(default_factory=set)

    def update(self, listing: ScriptList) -> None:
        """The agent's current list: new tickets appear, completed-and-gone ones leave."""
        current = {s.ticket.key: s for s in listing.scripts}
        for key in list(self._seen):
            if key not in current:
                del self._seen[key]
        for key, summary in current.items():
            seen = self._seen.setdefault(key, _Seen(summary))
            seen.summary = summary
            if summary.next_log_sequence > seen.next_sequence:  # a live script's own figures
                seen.next_sequence = summary.next_log_sequence
                seen.read = True
                if _shown(summary.last_line):
                    seen.last_line = summary.last_line
        self._quarantined = {entry.ticket.key for entry in listing.quarantined}

    def live_tickets(self) -> list[str]:
        """Tickets whose processes are worth sampling."""
        live = (ScriptPhase.QUEUED, ScriptPhase.RUNNING, ScriptPhase.CANCELLING)
        return [s.summary.ticket.task_id for s in self._seen.values() if s.summary.phase in live]

    def unread_tickets(self) -> list[str]:
        """Finished tickets whose output was never seen: a quick script can end between two
        list polls, and then only its status says what it printed last."""
        return [s.summary.ticket.task_id for s in self._seen.values() if not s.read]

    def observe_output(self, status: ScriptStatusResponse) -> None:
        seen = self._seen.get(status.ticket.key)
        if seen is None:
            return
        printed = [
            r
            for r in status.logs
            if r.source is not ProcessOutputSource.DEBUG and not r.text.startswith(SERVICE_MESSAGE)
        ]
        if printed:
            seen.last_line = printed[-1].text
        seen.next_sequence = max(seen.next_sequence, status.next_log_sequence)
        seen.read = True

    def observe_tree(self, tree: ScriptProcessTree, at: float) -> None:
        """A process sample at monotonic time `at`; the second one onwards gives a verdict."""
        seen = self._seen.get(tree.ticket.key)
        if seen is None:
            return
        sample = ActivitySample(at, seen.next_sequence, tuple(tree.processes))
        if seen.sample is not None:
            seen.verdict = classify(seen.sample, sample)
        seen.sample = sample

    def rows(self, now: datetime) -> list[ScriptRow]:
        """Live scripts first (oldest first), then finished ones (newest first)."""
        rows = [self._row(seen, now) for seen in self._seen.values()]
        live = [r for r in rows if r.exit_code is None]
        done = [r for r in rows if r.exit_code is not None]
        live.sort(key=lambda r: r.started or now)
        done.sort(key=lambda r: r.started or now, reverse=True)
        return live + done

    def _row(self, seen: _Seen, now: datetime) -> ScriptRow:
        summary = seen.summary
        finished = summary.phase in (ScriptPhase.COMPLETE, ScriptPhase.ABANDONED)
        state = summary.phase.value
        if summary.ticket.key in self._quarantined:
            state = QUARANTINED
        end = summary.completed if finished else now
        activity = seen.verdict
        if summary.phase is ScriptPhase.QUEUED:  # no process yet: its activity is the wait
            activity = Verdict(Activity.WAITING, f"waiting for the mutex {summary.mutex_name}")
        return ScriptRow(
            ticket=summary.ticket.task_id,
            task_id=summary.task_id,
            state=state,
            mutex=summary.mutex_name,
            level=_level(summary.isolation),
            started=summary.started,
            duration=(end - summary.started) if summary.started and end else None,
            exit_code=summary.exit_code if finished else None,
            last_line=seen.last_line,
            activity=None if finished else activity,
            pid=summary.pid,
        )


def _shown(line: str) -> bool:
    return bool(line) and not line.startswith(SERVICE_MESSAGE)


def _level(level: ScriptIsolationLevel) -> str:
    return "full" if level is ScriptIsolationLevel.FULL_ISOLATION else "none"
