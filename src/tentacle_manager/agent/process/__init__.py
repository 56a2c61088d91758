"""Launching script processes, finding their whole tree, and stopping it."""
