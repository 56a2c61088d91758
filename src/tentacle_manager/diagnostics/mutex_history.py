"""The last hour of every isolation mutex, as intervals: who held it, who waited, how long.

The mutex inspector draws this as a timeline (one row per lock, a bar per hold and per wait)
that an admin can send to whoever asks why a deployment sat still. It is built from the
agent's change stream: the snapshot that opens the stream seeds the open intervals, and each
event closes or opens one. Nothing here knows about Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tentacle_manager.contracts import (
    MutexEvent,
    MutexEventKind,
    MutexParty,
    MutexSnapshot,
    ScriptTicket,
)

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Interval:
    """A hold (`waiting` False) or a wait of one party on one lock; `end` None while open."""

    lock: str
    party: MutexParty
    waiting: bool
    start: datetime
    end: datetime | None = None
    abandoned: bool = False  # the holder was abandoned: its process may still be running

    def overlaps(self, since: datetime) -> bool:
        return self.end is None or self.end >= since


@dataclass
class MutexHistory:
    window: timedelta = WINDOW
    _closed: list[Interval] = field(default_factory=list)
    _open: dict[tuple[str, str, bool], Interval] = field(default_factory=dict)

    def seed(self, snapshot: MutexSnapshot) -> None:
        """Open an interval for everyone the snapshot shows, from the time they began."""
        self._open.clear()
        for state in snapshot.mutexes:
            for party in state.holders:
                self._begin(state.name, party, waiting=False, at=party.since)
            for party in state.waiters:
                self._begin(state.name, party, waiting=True, at=party.since)

    def apply(self, event: MutexEvent) -> None:
        if event.kind is MutexEventKind.QUEUED:
            self._begin(event.name, event.party, waiting=True, at=event.at)
        elif event.kind is MutexEventKind.ACQUIRED:
            self._end(event.name, event.party, waiting=True, at=event.at)
            self._begin(event.name, event.party, waiting=False, at=event.at)
        elif event.kind is MutexEventKind.RELEASED:
            self._end(event.name, event.party, waiting=False, at=event.at)
        else:  # LEFT_QUEUE: cancelled or timed out while waiting
            self._end(event.name, event.party, waiting=True, at=event.at)

    def mark_abandoned(self, script: ScriptTicket) -> None:
        """The scripts panel learned that this holder was abandoned; its bars say so."""
        for key, interval in self._open.items():
            if interval.party.ticket == script and not interval.waiting:
                self._open[key] = replace(interval, abandoned=True)
        self._closed = [
            replace(i, abandoned=True) if i.party.ticket == script and not i.waiting else i
            for i in self._closed
        ]

    def intervals(self, now: datetime) -> dict[str, list[Interval]]:
        """Every interval that touches the window ending `now`, by lock, oldest first."""
        since = now - self.window
        self._closed = [i for i in self._closed if i.overlaps(since)]
        by_lock: dict[str, list[Interval]] = {}
        for interval in sorted([*self._closed, *self._open.values()], key=lambda i: i.start):
            by_lock.setdefault(interval.lock, []).append(interval)
        return dict(sorted(by_lock.items()))

    def _begin(self, lock: str, party: MutexParty, *, waiting: bool, at: datetime) -> None:
        self._open[(lock, party.ticket.key, waiting)] = Interval(lock, party, waiting, at)

    def _end(self, lock: str, party: MutexParty, *, waiting: bool, at: datetime) -> None:
        interval = self._open.pop((lock, party.ticket.key, waiting), None)
        if interval is not None:
            self._closed.append(replace(interval, end=at))
