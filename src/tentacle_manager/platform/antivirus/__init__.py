"""What the operating system shows about its security products: running processes, services,
drivers, packages, fanotify groups, audit rules and (on Windows) Defender's own report.

Each probe only looks and returns plain records; deciding which product a record belongs to,
and what it means for the agent's exclusions, is diagnostics.antivirus's job. Probes that
need a Windows host are thin: they build one command and parse its output, so their tests can
assert the exact command and feed it recorded output.
"""
