"""The crash-safe upload protocol of docs/gc-protocol.md: its write half (uploads) beside its reclaim half (gc)."""
