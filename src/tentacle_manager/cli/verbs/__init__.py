"""The verbs of the `tentacle` program, one module per subject."""
