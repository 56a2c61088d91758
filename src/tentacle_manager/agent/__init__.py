"""The agent: script service, isolation mutexes, process runner and workspaces (no Qt here)."""
