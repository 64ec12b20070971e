"""The results as a text table (stdout), a Markdown page (LATEST.md) and JSON, with the machine they ran on."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Row, Target

COLUMNS = ("id", "variant", "what", "subject", "baseline", "ratio", "rounds", "target", "result")


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and the checkout, so figures can be told apart later."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return ""
    return result.stdout.strip()


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def cells(row: Row) -> list[str]:
    """The table cells of one row."""
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    if row.figure is not None and row.target.unit != "x":
        ratio = f"{_number(row.figure, row.target.unit)} ({ratio})"
    per_round = row.round_ratios()
    spread = f"{min(per_round):.2f}-{max(per_round):.2f}" if len(per_round) > 1 else "-"
    return [
        row.id,
        row.variant,
        row.what,
        _number(row.subject, row.unit),
        _number(row.baseline, row.unit),
        ratio,
        spread,
        str(row.target),
        row.status,
    ]


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width table for the terminal."""
    body = [list(COLUMNS)] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown(rows: Sequence[Row], machine: dict[str, Any], mode: str, command: str) -> str:
    """The page committed as benchmarks/LATEST.md."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    table = [head, rule] + ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |" for row in rows]
    notes = [f"- **{row.id} {row.variant}, {row.what}**: {row.notes}" for row in rows if row.notes]
    about = ", ".join(f"{key} {value}" for key, value in machine.items())
    return "\n".join(
        [
            "# Latest benchmark results",
            "",
            f"`{command}` ({mode} mode). Every ratio is blobstore against a baseline measured in the same",
            "run on the same data, alternating baseline and subject (ABBA) for several rounds; the ratio",
            "is the median of the per-round ratios (`rounds` shows their lowest and highest). Speeds:",
            "subject / baseline throughput (higher is better). Times: subject / baseline time (lower is",
            "better). See benchmarks/__init__.py.",
            "",
            f"Machine: {about}.",
            "",
            *table,
            "",
            "## Notes",
            "",
            *notes,
            "",
        ]
    )


def to_json(rows: Sequence[Row], machine: dict[str, Any], mode: str, seconds: float) -> dict[str, Any]:
    """The JSON document written to benchmarks/results/latest.json."""
    return {
        "mode": mode,
        "machine": {**machine, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "duration_seconds": round(seconds, 1),
        "results": [row.to_dict() for row in rows],
    }


def rows_from_json(document: dict[str, Any]) -> list[Row]:
    """The rows of a document written by :func:`to_json` (to render it again without running anything)."""
    rows = []
    for item in document["results"]:
        subject, baseline = item["subject"], item["baseline"]
        rows.append(
            Row(
                item["id"],
                item["variant"],
                item["what"],
                None if subject is None else subject["value"],
                None if baseline is None else baseline["value"],
                (subject or baseline or {"unit": ""})["unit"],
                item["ratio"],
                Target(**item["target"]),
                figure=item["figure"],
                notes=item["notes"],
                state=None if item["status"] in ("pass", "miss") else item["status"],
                samples=item["samples"],
            )
        )
    return rows


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
