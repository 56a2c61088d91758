"""The Windows version resource of each executable, from resources/version-info.txt.

The template is PyInstaller's VSVersionInfo syntax with {numbers}, {version}, {program} and
{description} to fill in, so the version shown in Explorer and read by the Inno Setup recipe
(GetFileProductVersionString) is tentacle_manager.__version__, never a second copy of it.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "resources" / "version-info.txt"


def numbers(version: str) -> tuple[int, int, int, int]:
    """'1.2.3rc1+local' -> (1, 2, 3, 0): Windows keeps four 16-bit numbers."""
    found = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3]]
    return (*found, *[0] * (4 - len(found)))  # type: ignore[return-value]


def render(program: str, description: str, version: str) -> str:
    return TEMPLATE.read_text(encoding="utf-8").format(
        numbers=numbers(version), version=version, program=program, description=description
    )
