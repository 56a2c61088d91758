"""Named isolation mutexes: one reader/writer lock per name, inspectable, with change events."""

from tentacle_manager.agent.isolation.registry import IsolationRegistry, MutexWaitOutcome

__all__ = ["IsolationRegistry", "MutexWaitOutcome"]
