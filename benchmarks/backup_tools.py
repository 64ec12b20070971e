"""C5: ``blobstore import`` against the backup tools people already trust, restic and borg, on three seeded datasets.

Datasets (built by the benchmark, seeded), each a sequence of versions backed up one after another into one
repository (one store):

* ``source``: two releases of a source tree: the running Python's standard library (``__pycache__`` and
  ``site-packages`` left out), then a copy with 5% of its files edited (a line inserted);
* ``uploads``: 3,000 uploads of 4 KiB-2 MiB (log-uniform sizes), 30% of them exact duplicates of earlier ones,
  half JSON-log text and half random bytes;
* ``document``: 10 versions of a 20 MiB text document, each a few small edits away from the one before.

Subject: ``blobstore import`` as the library runs it (plan and ``import_source`` with the CLI's 4 jobs, one
prefix per version) into SQLite + a local directory; its stored bytes are everything under the store's home
(objects and catalog). Baselines: ``restic backup`` (repository format 2, compression ``auto``) and
``borg create --compression zstd,3`` (no encryption); their stored bytes are their repositories (caches left
out). Two rows per dataset: stored bytes ÷ borg's (target ≤ 1.3) and import time ÷ restic's (target ≤ 1). One
round: each side builds its repository once. Rows skip where restic or borg is not installed.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import corpus
from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, phase, unmeasured
from blobstore.transfer import import_source, open_source, plan_import

KiB = 1024
MiB = 1024 * KiB
SEED = 5
JOBS = 4
BYTES_TARGET = Target("<=", 1.3)
TIME_TARGET = Target("<=", 1.0)
TOOLS = ("restic", "borg")
#: Names the source dataset leaves out of the standard library: bytecode caches and installed packages.
_NOT_SOURCE = {"__pycache__", "site-packages", "dist-packages"}


@dataclass(frozen=True)
class Sizes:
    #: Files of the standard library taken (None: all of them).
    source_files: int | None
    uploads: int
    smallest_upload: int
    largest_upload: int
    document: int
    versions: int


QUICK = Sizes(
    source_files=None, uploads=600, smallest_upload=4 * KiB, largest_upload=2 * MiB, document=8 * MiB, versions=5
)
FULL = Sizes(
    source_files=None, uploads=3000, smallest_upload=4 * KiB, largest_upload=2 * MiB, document=20 * MiB, versions=10
)


@dataclass(frozen=True)
class Dataset:
    name: str
    #: The directories backed up, in order (one per version).
    versions: list[Path]
    #: Bytes of every file of every version.
    logical: int
    description: str


@dataclass(frozen=True)
class Measured:
    seconds: float
    stored: int


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        note = f"{' and '.join(missing)} not installed (apt-get install restic borgbackup)"
        return [unmeasured("C5", "-", "import vs restic / borg", BYTES_TARGET, "skip", note)]
    work = ctx.workdir / "c5"
    rng = random.Random(SEED)
    rows: list[Row] = []
    builders: list[Callable[[], Dataset]] = [
        lambda: _source_tree(rng, work / "source", sizes),
        lambda: _uploads(rng, work / "uploads", sizes),
        lambda: _document(rng, work / "document", sizes),
    ]
    for build in builders:
        dataset = await asyncio.to_thread(build)
        with phase(ctx, f"C5 {dataset.name}: {dataset.description}"):
            ours = await _blobstore(dataset, work / f"{dataset.name}-store")
            restic = await _restic(dataset, work / f"{dataset.name}-restic")
            borg = await _borg(dataset, work / f"{dataset.name}-borg")
        rows += _rows(dataset, ours, restic, borg)
        await asyncio.to_thread(shutil.rmtree, work)
    return rows


def _rows(dataset: Dataset, ours: Measured, restic: Measured, borg: Measured) -> list[Row]:
    logical = dataset.logical
    share = {name: measured.stored / logical for name, measured in (("ours", ours), ("restic", restic), ("borg", borg))}
    about = f"{dataset.description}, {len(dataset.versions)} version(s), {logical / MiB:,.0f} MiB logical"
    bytes_notes = (
        f"{about}; stored ÷ logical: blobstore {share['ours']:.3f}, borg zstd,3 {share['borg']:.3f}, "
        f"restic {share['restic']:.3f}"
    )
    time_notes = f"{about}; seconds: blobstore {ours.seconds:.1f}, restic {restic.seconds:.1f}, borg {borg.seconds:.1f}"
    return [
        Row(
            "C5",
            f"{dataset.name} bytes",
            "stored bytes vs borg create --compression zstd,3",
            share["ours"],
            share["borg"],
            "stored/logical",
            share["ours"] / share["borg"],
            BYTES_TARGET,
            notes=bytes_notes,
        ),
        Row(
            "C5",
            f"{dataset.name} time",
            "import time vs restic backup",
            ours.seconds,
            restic.seconds,
            "s",
            ours.seconds / restic.seconds,
            TIME_TARGET,
            notes=time_notes,
            samples={"subject_seconds": [ours.seconds], "baseline_seconds": [restic.seconds]},
        ),
    ]


async def _blobstore(dataset: Dataset, home: Path) -> Measured:
    """Import each version under its own prefix into one fresh store; the time of the plans and imports."""
    seconds = 0.0
    async with open_store(home) as store:
        tenant = store.tenant("bench")
        for number, version in enumerate(dataset.versions):
            async with open_source(str(version)) as files:
                with Stopwatch() as watch:
                    plan = await plan_import(files, prefix=f"v{number}/")
                    result = await import_source(tenant, files, plan, jobs=JOBS)
            assert not result.failures, result.failures[:3]
            seconds += watch.seconds
    return Measured(seconds, _tree_bytes(home))


async def _restic(dataset: Dataset, repository: Path) -> Measured:
    env = {
        "RESTIC_REPOSITORY": str(repository),
        "RESTIC_PASSWORD": "benchmark",
        "RESTIC_CACHE_DIR": str(repository.with_name(repository.name + "-cache")),
    }
    await _command(["restic", "init", "--repository-version", "2"], env)
    seconds = 0.0
    for version in dataset.versions:
        seconds += await _command(["restic", "backup", "--quiet", "--compression", "auto", "."], env, cwd=version)
    return Measured(seconds, _tree_bytes(repository))


async def _borg(dataset: Dataset, repository: Path) -> Measured:
    env = {
        "BORG_REPO": str(repository),
        "BORG_BASE_DIR": str(repository.with_name(repository.name + "-base")),
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    }
    await _command(["borg", "init", "--encryption=none"], env)
    seconds = 0.0
    for number, version in enumerate(dataset.versions):
        create = ["borg", "create", "--compression", "zstd,3", f"::v{number}", "."]
        seconds += await _command(create, env, cwd=version)
    return Measured(seconds, _tree_bytes(repository))


async def _command(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """Run ``argv`` to its end with ``env`` added; its wall time. RuntimeError (with its output) if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    with Stopwatch() as watch:
        output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {output.decode(errors='replace')[-500:]}")
    return watch.seconds


def _tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def _source_tree(rng: random.Random, root: Path, sizes: Sizes) -> Dataset:
    """The standard library, then a copy with 5% of its files edited (a line inserted at a random place)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in stdlib.rglob("*")
        if path.is_file() and not path.is_symlink() and not _NOT_SOURCE & set(path.relative_to(stdlib).parts)
    )[: sizes.source_files]
    first, second = root / "v1", root / "v2"
    for path in files:
        copy = first / path.relative_to(stdlib)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    shutil.copytree(first, second)
    edited = rng.sample(files, max(1, len(files) // 20))
    for number, path in enumerate(edited):
        copy = second / path.relative_to(stdlib)
        data = copy.read_bytes()
        at = data.rfind(b"\n", 0, rng.randrange(len(data) + 1)) + 1
        copy.write_bytes(data[:at] + b"# edited for the next release (%d)\n" % number + data[at:])
    logical = 2 * sum(path.stat().st_size for path in files) + sum(
        len(b"# edited for the next release (%d)\n" % number) for number in range(len(edited))
    )
    description = f"Python standard library ({len(files):,} files), then {len(edited)} files edited"
    return Dataset("source", [first, second], logical, description)


def _uploads(rng: random.Random, root: Path, sizes: Sizes) -> Dataset:
    """``sizes.uploads`` files of log-uniform sizes, 30% exact duplicates of earlier ones, half text, half random."""
    low, high = math.log(sizes.smallest_upload), math.log(sizes.largest_upload)
    written: list[Path] = []
    logical = 0
    for number in range(sizes.uploads):
        path = root / "v1" / f"d{number // 100:03}" / f"upload-{number:05}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if written and rng.random() < 0.3:
            shutil.copyfile(rng.choice(written), path)
        else:
            size = int(math.exp(rng.uniform(low, high)))
            data = corpus.json_logs(rng, size)[:size] if rng.random() < 0.5 else rng.randbytes(size)
            path.write_bytes(data)
            written.append(path)
        logical += path.stat().st_size
    description = f"{sizes.uploads:,} uploads of {_size(sizes.smallest_upload)}-{_size(sizes.largest_upload)}"
    return Dataset("uploads", [root / "v1"], logical, description + ", 30% duplicates, half text")


def _document(rng: random.Random, root: Path, sizes: Sizes) -> Dataset:
    """``sizes.versions`` versions of one text document, each with five small edits (a sentence replaced or
    inserted) to the one before."""
    document = corpus.prose(rng, sizes.document)[: sizes.document]
    versions = []
    logical = 0
    for number in range(sizes.versions):
        if number:
            for _ in range(5):
                at = rng.randrange(len(document))
                cut = rng.choice((0, rng.randrange(20, 200)))
                document = document[:at] + corpus.prose(rng, rng.randrange(20, 200)) + document[at + cut :]
        version = root / f"v{number}"
        version.mkdir(parents=True)
        (version / "document.txt").write_bytes(document)
        versions.append(version)
        logical += len(document)
    description = f"a {_size(sizes.document)} text document, small edits between versions"
    return Dataset("document", versions, logical, description)


def _size(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // KiB} KiB"
