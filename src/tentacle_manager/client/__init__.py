"""Clients of the agent: the script-service protocol, the in-process and HTTPS agents, the
script executor with its cancel -> abandon escalation, and the multi-step task runner."""
