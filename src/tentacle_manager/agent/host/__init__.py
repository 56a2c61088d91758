"""The agent process: logging, the liveness heartbeat, and the run loop of `tentacle agent`."""
