#!/usr/bin/env python3
"""Render an HTML cost report in headless Chromium and check the screenshot shows a real page.

    python scripts/check_html_report.py [--html FILE] [--out DIR] [--chromium PATH]

Without ``--html`` it builds a small demo store (SQLite in a temp dir, memory
storage: six tenants sharing and copying blobs), renders its report, and
screenshots that. The PNG (``DIR/report.png``, default a temp dir) is checked
with the standard library only: it decodes, it is 1200x900, it is not one flat
colour, and the chart's three bar colours (logical, attributed, cost) appear
on it, so the inline SVG really drew. Chromium runs offline: no network, no
profile, no GPU. Exits 0 and prints the PNG's path if all holds; 1 otherwise;
2 if Chromium is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH, HEIGHT = 1200, 900
#: The chart's bar colours (report_html's --logical, --attributed, --cost) as RGB.
BAR_COLOURS = {"logical": (0x9F, 0xB3, 0xC8), "attributed": (0x2F, 0x6F, 0xB0), "cost": (0xD9, 0x82, 0x2B)}
#: Pixels of each bar colour the chart must show at least.
MIN_BAR_PIXELS = 200
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary: ``explicit``, /usr/bin/chromium, or chromium / chromium-browser on PATH."""
    for candidate in (explicit, "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def screenshot(chromium: str, html: Path, png: Path, timeout: float = 120) -> None:
    """Render ``html`` at 1200x900 into ``png`` with a throw-away profile; raise on failure."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={WIDTH},{HEIGHT}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit truecolour PNG (what Chromium writes)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    if depth != 8 or colour not in (2, 6) or header[12] != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {header[12]}")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def check_png(png: Path) -> list[str]:
    """What is wrong with the screenshot (empty: it shows a real page with the chart)."""
    data = png.read_bytes()
    width, height, rows = decode_png(data)
    problems = []
    if (width, height) != (WIDTH, HEIGHT):
        problems.append(f"screenshot is {width}x{height}, not {WIDTH}x{HEIGHT}")
    colours: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        colours.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    if len(colours) < 50:
        problems.append(f"only {len(colours)} distinct colours: the page looks blank")
    most, count = colours.most_common(1)[0]
    if count > 0.98 * width * height:
        problems.append(f"{count / (width * height):.1%} of the pixels are {most}: nearly one flat colour")
    for name, rgb in BAR_COLOURS.items():
        if colours[rgb] < MIN_BAR_PIXELS:
            problems.append(f"the {name} bars' colour {rgb} covers {colours[rgb]} pixels: the chart did not draw")
    return problems


async def demo_report_html(home: Path) -> str:
    """A small store with sharing, copies, a replaced key and reads; its HTML report."""
    from blobstore import BlobStore, Settings
    from blobstore.accounting.report_html import render_html

    settings = Settings(home=home, database_url="sqlite+aiosqlite:///:memory:", storage_url="memory://")
    async with await BlobStore.open(settings) as store:
        common = os.urandom(300_000)
        for index, name in enumerate(["acme", "globex", "initech", "umbrella", "hooli", "stark-industries"]):
            tenant = store.tenant(name)
            await tenant.put("shared/logo.bin", common)
            for copy in range(index % 3):
                await tenant.copy("shared/logo.bin", f"copies/logo-{copy}.bin")
            await tenant.put("own/data.bin", os.urandom(100_000 * (index + 1)))
            await tenant.get("own/data.bin")
        await store.tenant("acme").put("own/data.bin", os.urandom(50_000))
        report = await store.report(pricing="aws-s3-standard")
    return render_html(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, help="an HTML report to check (default: render a demo store's)")
    parser.add_argument("--out", type=Path, help="where report.html / report.png go (default: a temp dir)")
    parser.add_argument("--chromium", help="the Chromium binary (default /usr/bin/chromium or PATH)")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("chromium not found: apt-get install -y chromium (Debian)", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="blobstore-html-report-"))
    out.mkdir(parents=True, exist_ok=True)
    html = args.html
    if html is None:
        html = out / "report.html"
        html.write_text(asyncio.run(demo_report_html(out / "store")), encoding="utf-8")
    png = out / "report.png"
    screenshot(chromium, html, png)
    problems = check_png(png)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(png)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
