"""Storage classes and which one a blob belongs in under its references' lifecycle rules: pure, no I/O
(docs/lifecycle.md).

A blob is shared by every key, in every tenant, that holds its digest, so it cools only when every one of
them lets it: each reference's tenant must have a rule with a transition of the longest prefix the key starts
with among those that set one, the key must be older than that rule's ``transition_after`` (since it was last
written), and the blob must not have been read, by anyone, for that long. The blob then goes to the warmest of
the classes those rules name; otherwise it belongs in STANDARD (so a blob read again, or written again under
a key, moves back at the next run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from blobstore.errors import InvalidInput
from blobstore.model.lifecycle import Rule

STANDARD = "STANDARD"
#: The classes a blob may be in, warmest (dearest to store) first. Only classes read without a restore:
#: GLACIER and DEEP_ARCHIVE objects cannot be read until restored, which a read cannot wait for.
STORAGE_CLASSES = (STANDARD, "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR")
#: The classes a rule may move blobs to.
COLD_CLASSES = STORAGE_CLASSES[1:]
#: A read is recorded by its UTC day, and counts as made at that day's end.
READ_GRANULARITY = timedelta(days=1)


def validate_storage_class(value: object) -> str:
    """``value`` if a rule may move blobs to it; one InvalidInput naming the classes otherwise."""
    if value not in COLD_CLASSES:
        raise InvalidInput(
            f"storage class must be one of {', '.join(COLD_CLASSES)}, not {value!r} "
            "(GLACIER and DEEP_ARCHIVE need a restore before a read and are not supported)"
        )
    return str(value)


@dataclass(frozen=True)
class Reference:
    """One key holding a blob: its tenant, key and when it was last written."""

    tenant: str
    key: str
    written_at: datetime


def transition_rule(key: str, rules: Iterable[Rule]) -> Rule | None:
    """The rule of the longest prefix ``key`` starts with among ``rules`` that set a transition."""
    matching = [rule for rule in rules if key.startswith(rule.prefix) and rule.transition_after is not None]
    return max(matching, key=lambda rule: len(rule.prefix), default=None)


def class_for(
    references: Iterable[Reference],
    rules: Mapping[str, list[Rule]],
    last_read_day: datetime | None,
    now: datetime,
) -> str:
    """The class a blob held by ``references`` belongs in at ``now``, its latest read recorded on the day
    starting at ``last_read_day`` (None: none), under each tenant's ``rules``."""
    classes: list[str] = []
    for reference in references:
        rule = transition_rule(reference.key, rules.get(reference.tenant, ()))
        if rule is None or rule.transition_after is None or rule.storage_class is None:
            return STANDARD
        cold_since = now - timedelta(seconds=rule.transition_after)
        if reference.written_at > cold_since:
            return STANDARD
        if last_read_day is not None and last_read_day + READ_GRANULARITY > cold_since:
            return STANDARD
        classes.append(rule.storage_class)
    return min(classes, key=STORAGE_CLASSES.index, default=STANDARD)
