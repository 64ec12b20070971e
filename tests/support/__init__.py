"""Helpers the tests share: servers, stores, workers, probes."""
