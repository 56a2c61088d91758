"""auditd rules that audit every program start (execve), from the kernel and from rule files.

auditd's syscall rules are evaluated on every matching syscall of every process, so an execve
rule taxes exactly what an agent does all day: start short-lived processes (auditctl(8),
"PERFORMANCE TIPS"). The kernel's loaded rules (`auditctl -l`, root only) are the truth; the
files under /etc/audit show what will be loaded at the next boot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

from tentacle_manager.platform.antivirus.records import AuditRule, ProbeUnavailable
from tentacle_manager.platform.services.spec import Runner, run_command

LIST_RULES = ("auditctl", "-l")
LOADED = "auditctl -l"
RULE_FILES = (Path("/etc/audit/rules.d"), Path("/etc/audit/audit.rules"))
EXEC_SYSCALLS = {"execve", "execveat", "all"}


def loaded_exec_rules(runner: Runner = run_command) -> list[AuditRule]:
    done = runner(LIST_RULES)
    if done.returncode != 0:
        first = done.output.splitlines()[0] if done.output else f"exit code {done.returncode}"
        raise ProbeUnavailable(f"audit rules: {LOADED} failed: {first}")
    return exec_rules(done.stdout, LOADED)


def configured_exec_rules(places: Sequence[Path] = RULE_FILES) -> list[AuditRule]:
    """Rules in the `*.rules` files of the folders, and in the files, that exist."""
    found: list[AuditRule] = []
    for file in _rule_files(places):
        try:
            text = file.read_text(errors="replace")
        except FileNotFoundError:
            continue
        except OSError as error:
            raise _unreadable(file, error) from None
        found.extend(exec_rules(text, str(file)))
    return found


def exec_rules(text: str, source: str) -> list[AuditRule]:
    """The `-a always,exit` (or `exit,always`) syscall rules whose -S names an exec syscall.

    `never` rules are exclusions, not costs; watches (-w) are the cheap kind auditctl advises.
    A file's rules carry `<file>:<line>`, so the report points at the line to change.
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _is_exec_rule(line.split()):
            where = source if source == LOADED else f"{source}:{number}"
            found.append(AuditRule(where, line.strip()))
    return found


def _is_exec_rule(tokens: list[str]) -> bool:
    actions: set[str] = set()
    syscalls: set[str] = set()
    for option, value in pairwise(tokens):
        if option in ("-a", "-A"):
            actions.update(value.split(","))
        elif option == "-S":
            syscalls.update(value.split(","))
    return {"always", "exit"} <= actions and bool(syscalls & EXEC_SYSCALLS)


def _rule_files(places: Sequence[Path]) -> Iterator[Path]:
    for place in places:
        try:
            yield from sorted(file for file in place.iterdir() if file.suffix == ".rules")
        except NotADirectoryError:
            yield place
        except FileNotFoundError:
            continue
        except OSError as error:
            raise _unreadable(place, error) from None


def _unreadable(path: Path, error: OSError) -> ProbeUnavailable:
    return ProbeUnavailable(f"audit rules: cannot read {path}: {error.strerror}")
