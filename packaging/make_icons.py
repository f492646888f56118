"""Render resources/icons/verbatim.svg to the PNG sizes of the freedesktop icon theme and a Windows .ico.

Run once after changing the SVG (the outputs are committed):  .venv/bin/python packaging/make_icons.py
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icons" / "verbatim.svg"
PNG_DIR = ROOT / "resources" / "icons" / "png"
ICO = ROOT / "resources" / "icons" / "verbatim.ico"
PNG_SIZES_PX = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES_PX = (16, 24, 32, 48, 64, 128, 256)


def render_png(size_px: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size_px, size_px, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(SVG)).render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError(f"could not encode a {size_px} px PNG")
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An .ico holding PNG images (allowed since Windows Vista): a header, a directory, the PNGs."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    directory, payload = b"", b""
    for size_px, png in pngs.items():
        side = 0 if size_px >= 256 else size_px  # 0 means 256 in the ICO directory
        directory += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset + len(payload))
        payload += png
    return header + directory + payload


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    PNG_DIR.mkdir(parents=True, exist_ok=True)
    pngs = {size_px: render_png(size_px) for size_px in PNG_SIZES_PX}
    for size_px, png in pngs.items():
        (PNG_DIR / f"verbatim-{size_px}.png").write_bytes(png)
    ICO.write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES_PX}))
    print(f"wrote {len(pngs)} PNGs to {PNG_DIR.relative_to(ROOT)} and {ICO.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
