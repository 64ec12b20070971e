"""Checks and repairs an operator runs over a whole store (fsck)."""
