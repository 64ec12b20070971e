"""The measuring kit every benchmark shares: the run context, targets, result rows and A/B interleaving.

A benchmark hands :func:`interleave` two coroutine factories, each running one
batch of work and returning the seconds it took (setup stays outside the
timed part). They alternate in ABBA order after one untimed warm-up of each,
so slow drifts of a shared machine hit both sides alike; the reported ratio
is the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Batch = Callable[[], Awaitable[float]]


@dataclass
class Context:
    """What a benchmark run may use: its size mode, a scratch directory and the servers it can reach."""

    quick: bool
    workdir: Path
    #: Admin URL of a PostgreSQL server for scratch databases, or None to skip PostgreSQL variants.
    postgres_admin_url: str | None
    #: Whether to start moto's S3 server for S3 variants.
    s3: bool = True
    verbose: bool = True
    #: Per benchmark id, sizes to use instead of the mode's (the smoke test's tiny ones).
    sizes: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        """Progress for the person watching, stamped with seconds since the run began (stderr)."""
        if self.verbose:
            print(f"[{time.monotonic() - self.started:6.0f} s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """The bar a figure must clear: ``op`` is ``>=`` or ``<=``; ``unit`` is ``x`` for a ratio."""

    op: Literal[">=", "<="]
    value: float
    unit: str = "x"

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}{'' if self.unit == 'x' else ' '}{self.unit}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value, "unit": self.unit}


@dataclass
class Row:
    """One line of the results table.

    ``subject`` and ``baseline`` are in ``unit``; ``ratio`` is subject relative to
    baseline (for speeds subject/baseline throughput, for latencies subject/baseline
    time); ``figure`` is what the target judges (the ratio unless a benchmark says
    otherwise, like P4's MiB above the baseline). ``state`` overrides pass/miss for
    rows that could not be measured (``skip``, ``waits``, ``error``).
    """

    id: str
    variant: str
    what: str
    subject: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    target: Target
    figure: float | None = None
    notes: str = ""
    state: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.figure is None:
            self.figure = self.ratio

    @property
    def status(self) -> str:
        if self.state is not None:
            return self.state
        assert self.figure is not None
        return "pass" if self.target.met(self.figure) else "miss"

    def round_ratios(self) -> list[float]:
        """The ratio of each round, in the row's direction (empty when the row has no paired samples)."""
        base, subj = self.samples.get("baseline_seconds"), self.samples.get("subject_seconds")
        if not base or not subj or len(base) != len(subj):
            return []
        if self.target.op == ">=":
            return [b / s for b, s in zip(base, subj, strict=True)]
        return [s / b for b, s in zip(base, subj, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "variant": self.variant,
            "what": self.what,
            "subject": None if self.subject is None else {"value": self.subject, "unit": self.unit},
            "baseline": None if self.baseline is None else {"value": self.baseline, "unit": self.unit},
            "ratio": self.ratio,
            "figure": self.figure,
            "target": self.target.to_dict(),
            "status": self.status,
            "round_ratios": self.round_ratios(),
            "notes": self.notes,
            "samples": self.samples,
        }


def unmeasured(id: str, variant: str, what: str, target: Target, state: str, notes: str) -> Row:
    """A row for a benchmark that did not run (``skip``, ``waits``) or failed (``error``)."""
    return Row(id, variant, what, None, None, "", None, target, notes=notes, state=state)


async def guarded(rows: Awaitable[list[Row]], id: str, variant: str, what: str, target: Target) -> list[Row]:
    """The rows of one variant, or an ``error`` row if it raised, so the other variants still report."""
    try:
        return await rows
    except Exception as exc:
        traceback.print_exc()
        return [unmeasured(id, variant, what, target, "error", f"{type(exc).__name__}: {exc}")]


@dataclass(frozen=True)
class Paired:
    """Seconds per batch of the baseline and the subject, round by round."""

    baseline: list[float]
    subject: list[float]

    def speed_ratio(self) -> float:
        """Median over rounds of subject throughput / baseline throughput (higher is better)."""
        return statistics.median(b / s for b, s in zip(self.baseline, self.subject, strict=True))

    def time_ratio(self) -> float:
        """Median over rounds of subject time / baseline time (lower is better)."""
        return statistics.median(s / b for b, s in zip(self.baseline, self.subject, strict=True))

    def samples(self) -> dict[str, list[float]]:
        return {"baseline_seconds": self.baseline, "subject_seconds": self.subject}


async def interleave(rounds: int, baseline: Batch, subject: Batch, *, warmup: bool = True) -> Paired:
    """Time ``rounds`` batches of each side, alternating ABBA after one untimed warm-up of each."""
    if warmup:
        await baseline()
        await subject()
    base: list[float] = []
    subj: list[float] = []
    for round_number in range(rounds):
        if round_number % 2 == 0:
            base.append(await baseline())
            subj.append(await subject())
        else:
            subj.append(await subject())
            base.append(await baseline())
    return Paired(base, subj)


def throughput_row(
    id: str, variant: str, what: str, paired: Paired, work: float, unit: str, target: Target, notes: str = ""
) -> Row:
    """A row of speeds: ``work`` units done per batch, e.g. puts or MiB, shown as ``unit`` per second."""
    return Row(
        id,
        variant,
        what,
        work / statistics.median(paired.subject),
        work / statistics.median(paired.baseline),
        unit,
        paired.speed_ratio(),
        target,
        notes=notes,
        samples=paired.samples(),
    )


def latency_row(
    id: str, variant: str, what: str, paired: Paired, per_batch: int, target: Target, notes: str = ""
) -> Row:
    """A row of times: each batch did ``per_batch`` operations; shown as milliseconds per operation."""
    return Row(
        id,
        variant,
        what,
        1000 * statistics.median(paired.subject) / per_batch,
        1000 * statistics.median(paired.baseline) / per_batch,
        "ms",
        paired.time_ratio(),
        target,
        notes=notes,
        samples=paired.samples(),
    )


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


@contextmanager
def phase(ctx: Context, label: str) -> Iterator[None]:
    """Log how long a setup or measuring phase took."""
    started = time.perf_counter()
    ctx.log(f"{label} ...")
    yield
    ctx.log(f"{label}: {time.perf_counter() - started:.1f} s")
