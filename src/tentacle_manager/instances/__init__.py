"""Instances: registry, configuration, home layout, certificates and secrets of each Tentacle."""
