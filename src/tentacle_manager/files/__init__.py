"""Low-level file helpers every layer may use: cross-process locks."""
