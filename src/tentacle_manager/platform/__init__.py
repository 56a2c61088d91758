"""Adapters to the operating system: service managers today; firewall, shells, elevation and
anti-virus probes as they arrive. Nothing here knows about the agent's script service."""
