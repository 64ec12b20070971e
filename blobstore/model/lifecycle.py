"""Lifecycle expiry rules and when a key expires under them: pure, no I/O (docs/lifecycle.md).

A key expires at the earlier of its own expiry (a put's ``expires_in``) and ``expire_after`` seconds after it
was last written, under the rule of the longest prefix of its tenant that the key starts with. A longer prefix
overrides a shorter one either way, so ``tmp/keep/`` at 90d keeps those keys longer than ``tmp/`` at 7d does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Rule:
    """A tenant's expiry rule: its keys under ``prefix`` expire ``expire_after`` seconds after they were last
    written."""

    tenant: str
    prefix: str
    expire_after: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def governing_rule(key: str, rules: Iterable[Rule]) -> Rule | None:
    """The rule of the longest prefix ``key`` starts with (None: no rule matches)."""
    matching = [rule for rule in rules if key.startswith(rule.prefix)]
    return max(matching, key=lambda rule: len(rule.prefix), default=None)


def expiry_of(key: str, written_at: datetime, own: datetime | None, rules: Iterable[Rule]) -> datetime | None:
    """When ``key``, last written at ``written_at``, with its own expiry ``own``, expires (None: never)."""
    rule = governing_rule(key, rules)
    by_rule = None if rule is None else written_at + timedelta(seconds=rule.expire_after)
    return min((moment for moment in (own, by_rule) if moment is not None), default=None)
