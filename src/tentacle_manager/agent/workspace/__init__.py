"""Durable per-script workspaces under <home>/Work/<ticket>/: bootstrap, files, state, output."""
