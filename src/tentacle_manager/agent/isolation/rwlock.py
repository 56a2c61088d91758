"""A strictly FIFO asyncio reader/writer lock that hands over on release.

Tentacle's lock (Nito AsyncReaderWriterLock behind a 100 ms / 10 min poll) is only roughly FIFO
and can reshuffle waiters at poll boundaries. This one keeps a single arrival-ordered queue:
the head is granted as soon as it is compatible, consecutive readers at the head are granted
together, and a reader never overtakes a queued writer (writer preference). Holders are recorded
at grant time, so an inspector sees the hand-over at the instant it happens.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tentacle_manager.contracts import MutexEventKind, MutexParty, ScriptIsolationLevel, utc_now


@dataclass(eq=False)
class LockRequest:
    """One party's claim on the lock; `granted` resolves when it becomes a holder."""

    party: MutexParty
    granted: asyncio.Future[None] = field(repr=False)

    @property
    def writer(self) -> bool:
        return self.party.level is ScriptIsolationLevel.FULL_ISOLATION


Listener = Callable[[MutexEventKind, MutexParty], None]


class FifoReaderWriterLock:
    def __init__(self, on_event: Listener):
        self._holders: list[LockRequest] = []
        self._queue: deque[LockRequest] = deque()
        self._on_event = on_event

    @property
    def idle(self) -> bool:
        return not self._holders and not self._queue

    @property
    def holders(self) -> list[MutexParty]:
        return [request.party for request in self._holders]

    @property
    def waiters(self) -> list[MutexParty]:
        return [request.party for request in self._queue]

    def request(self, party: MutexParty) -> LockRequest:
        """Join the queue (or take the lock at once when nobody is ahead and it is compatible)."""
        request = LockRequest(party, asyncio.get_running_loop().create_future())
        if not self._queue and self._compatible(request):
            self._grant(request)
        else:
            self._queue.append(request)
            self._on_event(MutexEventKind.QUEUED, party)
        return request

    def withdraw(self, request: LockRequest) -> None:
        """Leave the queue (cancel or timeout); a request granted in the meantime is released."""
        if request in self._holders:
            self.release(request)
            return
        if request in self._queue:
            self._queue.remove(request)
            if not request.granted.done():
                request.granted.cancel()
            self._on_event(MutexEventKind.LEFT_QUEUE, request.party)
            self._pump()

    def release(self, request: LockRequest) -> None:
        if request not in self._holders:
            return
        self._holders.remove(request)
        self._on_event(MutexEventKind.RELEASED, request.party)
        self._pump()

    def blockers(self, request: LockRequest) -> list[MutexParty]:
        """Who stands between a queued request and the lock, for the task-log messages.

        The conflicting holders when there are any; otherwise (a reader held back only by a
        queued writer) the writers queued ahead of it. Tentacle names the readers in that case,
        which is misleading, and says "task not found" when nobody holds.
        """
        conflicting = [h.party for h in self._holders if request.writer or h.writer]
        if conflicting:
            return conflicting
        ahead: list[MutexParty] = []
        for queued in self._queue:
            if queued is request:
                break
            if queued.writer:
                ahead.append(queued.party)
        return ahead or [h.party for h in self._holders]

    def _compatible(self, request: LockRequest) -> bool:
        if request.writer:
            return not self._holders
        return not any(holder.writer for holder in self._holders)

    def _grant(self, request: LockRequest) -> None:
        # A holder's `since` is when it got the lock, not when it joined the queue.
        request.party = request.party.model_copy(update={"since": utc_now()})
        self._holders.append(request)
        if not request.granted.done():
            request.granted.set_result(None)
        self._on_event(MutexEventKind.ACQUIRED, request.party)

    def _pump(self) -> None:
        while self._queue and self._compatible(self._queue[0]):
            self._grant(self._queue.popleft())
