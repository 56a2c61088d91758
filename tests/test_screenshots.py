"""Screenshots of the main screens, from the real window under Xvfb, at 100% and 200% scale
in the light and the dark palette. They are written to screenshots/ in the checkout for a
person to look at; the test checks they were made whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parent.parent
SCREENS = (
    "dashboard",
    "scripts-during-cancel",
    "mutex-inspector",
    "log-viewer",
    "antivirus-advisor",
    "troubleshoot",
)
WINDOW = (1280, 800)
WIZARD_PAGES = (
    "wizard-1-communication",
    "wizard-2-storage",
    "wizard-3-polling",
    "wizard-3-listening-with-an-error",
    "wizard-4-prerequisites",
    "wizard-5-review",
    "wizard-6-install",
)
WIZARD = (760, 600)


def _qt_x11_libraries() -> bool:
    """The XCB libraries Qt's X11 platform plugin loads (scripts/ensure-xvfb installs them)."""
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    return all(
        name in listing
        for name in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    )


@pytest.fixture(scope="module")
def xvfb_run() -> str:
    if shutil.which("xvfb-run") is None or not _qt_x11_libraries():
        installed = subprocess.run([str(ROOT / "scripts" / "ensure-xvfb")], capture_output=True)
        if installed.returncode != 0 or shutil.which("xvfb-run") is None:
            pytest.skip(f"Xvfb could not be installed: {installed.stderr.decode()[-300:]}")
    return str(shutil.which("xvfb-run"))


@pytest.mark.parametrize(("theme", "scale"), [("light", 1), ("dark", 1), ("light", 2), ("dark", 2)])
def test_every_main_screen_is_captured(xvfb_run: str, theme: str, scale: int, tmp_path) -> None:
    folder = ROOT / "screenshots" / f"{theme}-{scale * 100}"
    shutil.rmtree(folder, ignore_errors=True)
    environment = {**os.environ, "QT_SCALE_FACTOR": str(scale)}
    environment.pop("QT_QPA_PLATFORM", None)  # a real X server this time
    result = subprocess.run(
        [
            xvfb_run,
            "-a",
            "-s",
            "-screen 0 2800x1800x24",
            sys.executable,
            "-m",
            "tests.screenshot_driver",
            str(folder),
            theme,
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    shutil.rmtree(folder / "sandbox", ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for screen in SCREENS:
        image = QImage(str(folder / f"{screen}.png"))
        assert not image.isNull(), screen
        assert (image.width(), image.height()) == (WINDOW[0] * scale, WINDOW[1] * scale), screen
    for page in WIZARD_PAGES:
        image = QImage(str(folder / f"{page}.png"))
        assert not image.isNull(), page
        assert image.width() >= WIZARD[0] * scale and image.height() >= WIZARD[1] * scale, page
