"""Lifecycle expiry rules and when a key expires under them: pure, no I/O (docs/lifecycle.md).

A key expires at the earlier of its own expiry (a put's ``expires_in``) and ``expire_after`` seconds after it
was last written, under the rule of the longest prefix of its tenant that the key starts with and that sets
``expire_after``. A longer prefix overrides a shorter one either way, so ``tmp/keep/`` at 90d keeps those keys
longer than ``tmp/`` at 7d does. An S3 multipart upload of a key is aborted once untouched for the
``abort_multipart_after`` of the longest matching prefix that sets one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal


@dataclass(frozen=True)
class Rule:
    """A tenant's lifecycle rule: its keys under ``prefix`` expire ``expire_after`` seconds after they were last
    written, and S3 multipart uploads of them are aborted once untouched for ``abort_multipart_after`` seconds
    (None: never)."""

    tenant: str
    prefix: str
    expire_after: int | None
    abort_multipart_after: int | None = None
    #: Seconds after which a blob of the rule's keys may move to ``storage_class`` once cold
    #: (blobstore.model.transitions); both None for a rule that moves nothing.
    transition_after: int | None = None
    storage_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


#: What a rule may set: how long after their last write its keys expire, how long an S3 multipart upload of them
#: may sit untouched.
Action = Literal["expire_after", "abort_multipart_after"]


def setting_for(key: str, rules: Iterable[Rule], action: Action) -> int | None:
    """The ``action`` seconds of the rule of the longest prefix ``key`` starts with among ``rules`` that set it."""
    matching = [rule for rule in rules if key.startswith(rule.prefix) and getattr(rule, action) is not None]
    rule = max(matching, key=lambda rule: len(rule.prefix), default=None)
    return None if rule is None else int(getattr(rule, action))


def expiry_of(key: str, written_at: datetime, own: datetime | None, rules: Iterable[Rule]) -> datetime | None:
    """When ``key``, last written at ``written_at``, with its own expiry ``own``, expires (None: never)."""
    after = setting_for(key, rules, "expire_after")
    by_rule = None if after is None else written_at + timedelta(seconds=after)
    return min((moment for moment in (own, by_rule) if moment is not None), default=None)
