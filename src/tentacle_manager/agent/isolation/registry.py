"""Every isolation mutex of one agent, by name (case-sensitive), with inspection and events.

A script waits here before its process may start. The wait ends the moment the lock is handed
over, the caller cancels, or the timeout passes; there is no polling interval to wait out.
While waiting, the script's log gets Tentacle's wait block after 100 ms and every 10 minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from tentacle_manager.agent.isolation import messages
from tentacle_manager.agent.isolation.rwlock import FifoReaderWriterLock, LockRequest
from tentacle_manager.contracts import MutexEvent, MutexEventKind, MutexParty, MutexState, utc_now

FIRST_NOTICE_AFTER = 0.1
REPEAT_NOTICE_EVERY = 600.0

MutexListener = Callable[[MutexEvent], None]


class MutexWaitOutcome(Enum):
    ACQUIRED = "acquired"
    CANCELED = "canceled"
    TIMED_OUT = "timed-out"


@dataclass(eq=False)
class Lease:
    """A held mutex. Releasing twice is harmless, so every exit path may release."""

    name: str
    _lock: FifoReaderWriterLock
    _request: LockRequest

    @property
    def party(self) -> MutexParty:
        return self._request.party

    def release(self) -> None:
        self._lock.release(self._request)


@dataclass
class MutexWait:
    outcome: MutexWaitOutcome
    lease: Lease | None
    final_message: str | None = None


class IsolationRegistry:
    def __init__(self) -> None:
        self._locks: dict[str, FifoReaderWriterLock] = {}
        self._listeners: list[MutexListener] = []

    def subscribe(self, listener: MutexListener) -> Callable[[], None]:
        """Receive every queue/acquire/release/leave event; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def snapshot(self) -> list[MutexState]:
        return [
            MutexState(name=name, holders=lock.holders, waiters=lock.waiters)
            for name, lock in sorted(self._locks.items())
            if not lock.idle
        ]

    def adopt(self, name: str, party: MutexParty) -> Lease:
        """Take the lock for a script re-adopted after an agent restart, ahead of new work."""
        lock = self._lock(name)
        request = lock.request(party)
        if not request.granted.done():
            lock.withdraw(request)
            raise RuntimeError(f"mutex {name!r} is not free for re-adopted script {party.ticket}")
        return Lease(name, lock, request)

    async def acquire(
        self,
        name: str,
        party: MutexParty,
        *,
        cancelled: asyncio.Event,
        timeout: timedelta | None,
        notify: Callable[[str], None],
    ) -> MutexWait:
        """Wait for the mutex; `notify` receives each busy message for the task log."""
        lock = self._lock(name)
        if cancelled.is_set():
            return MutexWait(
                MutexWaitOutcome.CANCELED,
                None,
                messages.canceled_message(party, lock.holders),
            )
        request = lock.request(party)
        if request.granted.done():
            return MutexWait(MutexWaitOutcome.ACQUIRED, Lease(name, lock, request))

        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if timeout is None else started + timeout.total_seconds()
        next_notice = started + FIRST_NOTICE_AFTER
        cancel_wait = asyncio.ensure_future(cancelled.wait())
        handed_over = False
        try:
            while True:
                wake = next_notice if deadline is None else min(next_notice, deadline)
                await asyncio.wait(
                    {request.granted, cancel_wait},
                    timeout=max(0.0, wake - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if cancelled.is_set():
                    return self._give_up(lock, request, MutexWaitOutcome.CANCELED, notify, None)
                if request.granted.done():
                    handed_over = True
                    return MutexWait(MutexWaitOutcome.ACQUIRED, Lease(name, lock, request))
                now = loop.time()
                if deadline is not None and now >= deadline:
                    waited = timedelta(seconds=now - started)
                    return self._give_up(
                        lock, request, MutexWaitOutcome.TIMED_OUT, notify, timeout or waited
                    )
                if now >= next_notice:
                    notify(messages.busy_message(party, lock.blockers(request)))
                    next_notice = now + REPEAT_NOTICE_EVERY
        finally:
            cancel_wait.cancel()
            if not handed_over:
                lock.withdraw(request)  # also releases a grant that nobody will use
                self._forget_if_idle(name)

    def _give_up(
        self,
        lock: FifoReaderWriterLock,
        request: LockRequest,
        outcome: MutexWaitOutcome,
        notify: Callable[[str], None],
        timeout: timedelta | None,
    ) -> MutexWait:
        blockers = lock.blockers(request)
        notify(messages.busy_message(request.party, blockers))
        lock.withdraw(request)
        if outcome is MutexWaitOutcome.CANCELED:
            final = messages.canceled_message(request.party, blockers)
        else:
            final = messages.timed_out_message(request.party, blockers, timeout or timedelta(0))
        return MutexWait(outcome, None, final)

    def _lock(self, name: str) -> FifoReaderWriterLock:
        lock = self._locks.get(name)
        if lock is None:
            lock = FifoReaderWriterLock(lambda kind, party: self._emit(kind, name, party))
            self._locks[name] = lock
        return lock

    def _forget_if_idle(self, name: str) -> None:
        lock = self._locks.get(name)
        if lock is not None and lock.idle:
            del self._locks[name]

    def _emit(self, kind: MutexEventKind, name: str, party: MutexParty) -> None:
        if kind is MutexEventKind.RELEASED:
            self._forget_if_idle(name)
        if not self._listeners:
            return
        event = MutexEvent(kind=kind, name=name, party=party, at=utc_now())
        for listener in list(self._listeners):
            listener(event)
