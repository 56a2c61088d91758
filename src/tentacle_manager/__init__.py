"""Tentacle Manager: a Tentacle-style deployment agent, its script service and a desktop manager."""

__version__ = "0.1.0"
