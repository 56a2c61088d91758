"""Renders tentacle-manager.svg into the PNGs the Linux desktop uses and the .ico Windows uses.

Run after changing the SVG: `.venv/bin/python resources/render_icons.py`. The outputs are
committed, so a build needs neither this script nor a display. Qt (already a dependency)
renders the SVG; the .ico is written here because Qt's ICO writer stores one image per file,
and Windows picks the size it needs from several (PNG-compressed entries, Windows Vista on).
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "tentacle-manager.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICO_SIZES = (16, 24, 32, 48, 64, 256)


def png_path(size: int) -> Path:
    return HERE / "icons" / f"tentacle-manager-{size}.png"


def render(renderer: QSvgRenderer, size: int) -> bytes:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError(f"Qt could not encode the {size}px icon as PNG")
    return bytes(data.data())


def ico(images: dict[int, bytes]) -> bytes:
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = len(header) + 16 * len(images)
    entries, payload = b"", b""
    for size, png in images.items():
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        payload += png
        offset += len(png)
    return header + entries + payload


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        print(f"{SOURCE} is not an SVG that Qt can render", file=sys.stderr)
        return 1
    rendered = {size: render(renderer, size) for size in PNG_SIZES}
    png_path(0).parent.mkdir(exist_ok=True)
    for size, png in rendered.items():
        png_path(size).write_bytes(png)
    (HERE / "tentacle-manager.ico").write_bytes(ico({size: rendered[size] for size in ICO_SIZES}))
    print(f"wrote {len(PNG_SIZES)} PNGs and tentacle-manager.ico from {SOURCE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
