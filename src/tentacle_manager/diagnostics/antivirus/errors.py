"""The one error the advisor raises for bad input: a path, a config file or recorded output
that breaks a rule."""

from __future__ import annotations

from tentacle_manager.contracts import ProblemsError


class AdvisorError(ProblemsError):
    """`field` names the input (an option, a file, `file:line`, a JSON path); `rule` says what
    it broke and, where there is one, what to do instead. The CLI prints `field: rule`; the GUI
    can show them apart."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__({field: rule})
        self.field = field
        self.rule = rule
