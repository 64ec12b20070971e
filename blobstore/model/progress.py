"""The progress callback that long maintenance runs report through."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called as work advances: ``advance`` units done of ``total`` (None while unknown) in ``phase``."""

    def __call__(self, phase: str, advance: int, total: int | None) -> None: ...


def no_progress(phase: str, advance: int, total: int | None) -> None:
    """The default: report nothing."""
