"""Low-level file helpers every layer may use: crash-safe replacement and cross-process locks."""
