"""The agent's HTTPS + JSON API: mutual TLS with pinned certificates, the script-service verbs,
and the admin verbs the manager uses."""
