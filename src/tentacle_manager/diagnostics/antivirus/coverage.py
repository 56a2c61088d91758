"""Whether a product already skips one recommended exclusion, with the reason in words.

"Excluded or not" is not enough: Defender hides its lists from standard users, a policy can
hide them from administrators too, a product may be installed but not scanning, and EDR
exclusions live in a console this machine cannot read. Each of those is its own state, so the
GUI can colour them and the request pack can ask the right people.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CoverageState(StrEnum):
    SET = "set"
    NOT_SET = "not set"
    NOT_ADMIN = "unknown: not administrator"
    HIDDEN_BY_POLICY = "unknown: hidden by policy"
    INACTIVE = "product not active"  # installed, but not scanning files on access
    NOT_WATCHED = "not watched"  # scanning, but not this path
    MANAGED_CENTRALLY = "unknown: managed centrally"
    NOT_APPLICABLE = "not applicable"  # the product audits rather than scans
    UNKNOWN = "unknown"  # could not be read; the detail says why


@dataclass(frozen=True)
class Coverage:
    state: CoverageState
    detail: str
