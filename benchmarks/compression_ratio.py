"""C1: stored bytes ÷ logical bytes on a seeded corpus (benchmarks/corpus.py), against ``zstd -3`` per file.

Subject: every file put into a fresh store (SQLite + local directory, compression ``auto``) under the
content type a service would send; stored bytes are the objects' lengths on disk. Baseline: each file
compressed whole with python-zstandard at level 3, the same as ``zstd -3`` (the stored size of a file is
the smaller of that and its raw size, as zstd's own gain check would). Two rows: the compressible part
(JSON logs, CSV, Python source, ELF binaries), whose ratio of ratios must be within 5% of zstd's, and the
already-compressed part (Flate-compressed PDFs, JPEGs), whose stored bytes must be within 1% of raw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import zstandard

from benchmarks import corpus
from benchmarks.corpus import CorpusFile
from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Target, phase

MiB = 1024 * 1024
SEED = 21
COMPRESSIBLE_TARGET = Target("<=", 1.05)
MEDIA_TARGET = Target("<=", 1.01)
UNIT = "stored/logical"


@dataclass(frozen=True)
class Sizes:
    #: Bytes of each text kind (JSON logs, CSV), cut into files of ``text_file`` bytes.
    text: int
    text_file: int
    #: Bytes of Python source and of ELF binaries (at most ``largest_binary`` each).
    source: int
    binaries: int
    largest_binary: int
    #: PDFs and their pages; bytes of JPEGs.
    pdfs: int
    pdf_pages: int
    jpegs: int


QUICK = Sizes(8 * MiB, 2 * MiB, 8 * MiB, 16 * MiB, 8 * MiB, pdfs=4, pdf_pages=40, jpegs=8 * MiB)
FULL = Sizes(32 * MiB, 4 * MiB, 32 * MiB, 64 * MiB, 32 * MiB, pdfs=16, pdf_pages=80, jpegs=32 * MiB)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rng = random.Random(SEED)
    with phase(ctx, "C1 corpus"):
        compressible = _compressible(rng, sizes)
        media, real_jpegs = _media(rng, sizes)
    home = ctx.workdir / "c1"
    rows = []
    with phase(ctx, "C1 puts"):
        for part, files, target, what in (
            ("compressible", compressible, COMPRESSIBLE_TARGET, "stored ÷ logical: JSON, CSV, Python, ELF"),
            ("media", media, MEDIA_TARGET, "stored ÷ logical: PDF, JPEG"),
        ):
            stored = await _stored_bytes(home / part, files)
            rows.append(_row(part, what, files, stored, target, real_jpegs))
    return rows


def _compressible(rng: random.Random, sizes: Sizes) -> list[CorpusFile]:
    files = []
    for kind, make, content_type in (
        ("json", corpus.json_logs, "application/json"),
        ("csv", corpus.csv_rows, "text/csv"),
    ):
        files += [
            CorpusFile(kind, f"{kind}-{number}", make(rng, sizes.text_file), content_type)
            for number in range(sizes.text // sizes.text_file)
        ]
    return files + corpus.python_sources(sizes.source) + corpus.elf_binaries(sizes.binaries, sizes.largest_binary)


def _media(rng: random.Random, sizes: Sizes) -> tuple[list[CorpusFile], bool]:
    jpegs, real = corpus.jpegs(rng, sizes.jpegs, count=8)
    return corpus.pdfs(rng, sizes.pdfs, sizes.pdf_pages) + jpegs, real


async def _stored_bytes(home: Path, files: list[CorpusFile]) -> int:
    """Put every file into a fresh store; the bytes its objects take on disk."""
    async with open_store(home) as store:
        tenant = store.tenant("bench")
        for number, item in enumerate(files):
            await tenant.put(f"c1/{number}/{item.name}", item.data, content_type=item.content_type)
    return sum(path.stat().st_size for path in (home / "blobs" / "data").rglob("*") if path.is_file())


def _zstd_size(data: bytes) -> int:
    """What ``zstd -3`` stores for ``data`` (raw when compressing does not pay)."""
    return min(len(data), len(zstandard.ZstdCompressor(level=3).compress(data)))


def _row(part: str, what: str, files: list[CorpusFile], stored: int, target: Target, real_jpegs: bool) -> Row:
    # Identical files are stored once: both sides count each distinct content once.
    distinct = list({item.data: item for item in files}.values())
    logical = sum(len(item.data) for item in distinct)
    reference: dict[str, list[int]] = {}
    for item in distinct:
        sums = reference.setdefault(item.kind, [0, 0])
        sums[0] += _zstd_size(item.data)
        sums[1] += len(item.data)
    zstd_ratio = sum(packed for packed, _ in reference.values()) / logical
    per_kind = ", ".join(f"{kind} {packed / plain:.3f}" for kind, (packed, plain) in sorted(reference.items()))
    subject = stored / logical
    summary = f"{len(distinct)} files, {logical / MiB:.1f} MiB; zstd -3 over each file: {zstd_ratio:.3f} ({per_kind})"
    if part == "media":
        jpegs = "JPEGs found on this machine" if real_jpegs else "no JPEG on this machine: seeded random bytes"
        return Row("C1", part, what, subject, 1.0, UNIT, subject, target, notes=f"{summary}; baseline: raw; {jpegs}")
    notes = f"{summary}; baseline: zstd -3"
    return Row("C1", part, what, subject, zstd_ratio, UNIT, subject / zstd_ratio, target, notes=notes)
