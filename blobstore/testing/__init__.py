"""Test support shipped with the package: the storage conformance suite (``blobstore.testing.storage_suite``,
which needs pytest) and fault injection for object storage (``blobstore.testing.faults``, exported here)."""

from blobstore.testing.faults import Fault, FaultyStorage, SimulatedCrash, dies_with

__all__ = ["Fault", "FaultyStorage", "SimulatedCrash", "dies_with"]
