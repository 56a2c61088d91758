"""What the packaging tests share: the Debian tools they run, installed when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ensure_packaging_tools() -> None:
    """scripts/ensure-packaging-tools, or the test fails saying why (it never skips)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-packaging-tools")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/ensure-packaging-tools failed:\n{done.stderr[-2000:]}")
