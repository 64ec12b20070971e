"""Seeded test data for the compression benchmarks (C1-C5): what services store, by kind.

Text kinds (JSON logs, CSV) are generated from a seeded ``random.Random``, so a run's bytes are the same on
every machine. Python source and ELF binaries are read from this machine (the running Python's standard
library, ``/usr/bin``), in path order. PDFs are generated: pages of seeded text in Flate-compressed content
streams, as real PDFs store them, each with a photo (seeded random bytes in place of JPEG data). JPEGs are
found on this machine (``/usr/share``, ``/usr/lib``), or are seeded random bytes when there are none
(incompressible either way); :func:`jpegs` says which.
"""

from __future__ import annotations

import random
import sysconfig
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_WORDS = [
    "request",
    "served",
    "cache",
    "miss",
    "upstream",
    "timeout",
    "retry",
    "user",
    "session",
    "token",
    "order",
    "invoice",
    "payment",
    "shipped",
    "warehouse",
    "inventory",
    "latency",
    "bytes",
    "region",
    "tenant",
    "bucket",
    "object",
    "key",
    "digest",
    "blob",
    "frame",
    "commit",
    "rollback",
]
_LEVELS = ("debug", "info", "info", "info", "warning", "error")
#: Bytes of the photo on each page of a generated PDF.
_PDF_IMAGE_SIZE = 24 * 1024
_PATHS = ("/api/v1/orders", "/api/v1/users", "/healthz", "/api/v1/blobs", "/static/app.js", "/login")


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus: its kind (``json``, ``csv``, ``python``, ``elf``, ``pdf``, ``jpeg``), name,
    bytes, and the content type a service would store it under."""

    kind: str
    name: str
    data: bytes
    content_type: str


def json_logs(rng: random.Random, size: int) -> bytes:
    """At least ``size`` bytes of JSON log lines (timestamps, levels, paths, ids, latencies, messages)."""
    lines: list[str] = []
    total = 0
    second = 1_700_000_000
    while total < size:
        second += rng.randrange(3)
        line = (
            f'{{"ts": {second}.{rng.randrange(1000):03d}, "level": "{rng.choice(_LEVELS)}", '
            f'"method": "{rng.choice(("GET", "PUT", "POST"))}", "path": "{rng.choice(_PATHS)}/{rng.randrange(10**6)}", '
            f'"status": {rng.choice((200, 200, 200, 204, 304, 404, 500))}, "latency_ms": {rng.expovariate(0.05):.2f}, '
            f'"request_id": "{rng.getrandbits(64):016x}", "message": "{" ".join(rng.choices(_WORDS, k=5))}"}}\n'
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def prose(rng: random.Random, size: int) -> bytes:
    """At least ``size`` bytes of plain text: numbered paragraphs of seeded words in lines of about 80 characters."""
    lines: list[str] = []
    total = 0
    while total < size:
        words = rng.choices(_WORDS, k=rng.randrange(6, 14))
        line = " ".join(words).capitalize() + (".\n\n" if rng.random() < 0.15 else ".\n")
        if line.endswith("\n\n"):
            line += f"{len(lines)}. "
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def csv_rows(rng: random.Random, size: int) -> bytes:
    """At least ``size`` bytes of CSV: a header, then rows of ids, dates, names, amounts and codes."""
    lines = ["order_id,date,customer,item,quantity,unit_price,currency,status\n"]
    total = len(lines[0])
    order = 100_000
    while total < size:
        order += 1
        line = (
            f"{order},2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},"
            f"{rng.choice(_WORDS)}-{rng.randrange(5000)},{rng.choice(_WORDS)} {rng.choice(_WORDS)},"
            f"{rng.randrange(1, 20)},{rng.uniform(0.5, 500):.2f},{rng.choice(('USD', 'EUR', 'GBP'))},"
            f"{rng.choice(('paid', 'shipped', 'pending', 'refunded'))}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def python_sources(total: int) -> list[CorpusFile]:
    """Files of the running Python's standard library, in path order, up to ``total`` bytes."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = (path for path in sorted(root.rglob("*.py")) if "site-packages" not in path.parts)
    return _taken("python", root, paths, total, "text/x-python")


def elf_binaries(total: int, largest: int) -> list[CorpusFile]:
    """ELF files of ``/usr/bin`` of at most ``largest`` bytes, in path order, up to ``total`` bytes."""
    root = Path("/usr/bin")
    paths = (
        path
        for path in sorted(root.iterdir())
        if path.is_file() and not path.is_symlink() and 0 < path.stat().st_size <= largest and _is_elf(path)
    )
    return _taken("elf", root, paths, total, "application/octet-stream")


def pdfs(rng: random.Random, count: int, pages: int) -> list[CorpusFile]:
    """``count`` generated PDFs of ``pages`` pages of seeded text each, content streams Flate-compressed."""
    return [CorpusFile("pdf", f"document-{number}.pdf", _pdf(rng, pages), "application/pdf") for number in range(count)]


def jpegs(rng: random.Random, total: int, count: int) -> tuple[list[CorpusFile], bool]:
    """JPEG files found on this machine, up to ``total`` bytes; if there are none, ``count`` files of seeded
    random bytes of ``total // count`` bytes each. The flag says whether they are real JPEGs."""
    found = [path for root in (Path("/usr/share"), Path("/usr/lib")) for path in _jpeg_paths(root)]
    files = _taken("jpeg", Path("/"), iter(sorted(found)), total, "image/jpeg")
    if files:
        return files, True
    size = total // count
    return [CorpusFile("jpeg", f"random-{n}.jpg", rng.randbytes(size), "image/jpeg") for n in range(count)], False


def _taken(kind: str, root: Path, paths: Iterator[Path], total: int, content_type: str) -> list[CorpusFile]:
    files: list[CorpusFile] = []
    taken = 0
    for path in paths:
        if taken >= total:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if data:
            files.append(CorpusFile(kind, str(path.relative_to(root)), data, content_type))
            taken += len(data)
    return files


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


def _jpeg_paths(root: Path) -> Iterator[Path]:
    for pattern in ("*.jpg", "*.jpeg"):
        for path in root.rglob(pattern):
            if path.is_file() and not path.is_symlink() and path.stat().st_size >= 16 * 1024:
                yield path


def _pdf(rng: random.Random, pages: int) -> bytes:
    """A minimal PDF: a catalog, a page tree, and ``pages`` pages, each with a Flate-compressed content stream
    and a photo (an image stream of seeded random bytes standing in for its DCT data)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    font = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for _ in range(pages):
        text = "\n".join(
            f"BT /F1 10 Tf 50 {780 - 14 * line} Td ({' '.join(rng.choices(_WORDS, k=12))}) Tj ET" for line in range(54)
        ).encode()
        stream = zlib.compress(text + b"\nq 200 0 0 150 50 20 cm /Im1 Do Q", 6)
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream))
        content = len(objects)
        photo = rng.randbytes(_PDF_IMAGE_SIZE)
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width 400 /Height 300 /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Length %d /Filter /DCTDecode >>\nstream\n%s\nendstream" % (len(photo), photo)
        )
        image = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im1 %d 0 R >> >> >>" % (content, font, image)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
