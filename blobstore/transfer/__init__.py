"""Import and export: move a directory or a bucket into a tenant (after a dry run), and get it back out.

* :func:`open_source` names a source (a directory or ``s3://bucket[/prefix]``),
  :func:`plan_import` lists and selects its files and names their keys;
* :func:`dry_run` hashes them and reports what importing would store and cost;
* :func:`import_source` imports them, resumably;
* :func:`plan_export` lists a tenant's keys under a prefix and :func:`export_tree`
  writes them back to a directory, verified.

The names load on first use (:mod:`blobstore.lazy`).
"""

from typing import TYPE_CHECKING

from blobstore.lazy import lazy_names

if TYPE_CHECKING:
    from blobstore.transfer.dryrun import DryRun, DuplicateGroup, dry_run
    from blobstore.transfer.exporter import ExportResult, export_tree, plan_export
    from blobstore.transfer.importer import ImportResult, import_source
    from blobstore.transfer.selection import Selection, plan_import
    from blobstore.transfer.sources import (
        BucketSource,
        DirectorySource,
        Failure,
        ImportSource,
        SourceFile,
        open_source,
    )

_MODULES = {
    "blobstore.transfer.dryrun": ("DryRun", "DuplicateGroup", "dry_run"),
    "blobstore.transfer.exporter": ("ExportResult", "export_tree", "plan_export"),
    "blobstore.transfer.importer": ("ImportResult", "import_source"),
    "blobstore.transfer.selection": ("Selection", "plan_import"),
    "blobstore.transfer.sources": (
        "BucketSource",
        "DirectorySource",
        "Failure",
        "ImportSource",
        "SourceFile",
        "open_source",
    ),
}
__getattr__ = lazy_names(__name__, {name: module for module, names in _MODULES.items() for name in names})

__all__ = [
    "BucketSource",
    "DirectorySource",
    "DryRun",
    "DuplicateGroup",
    "ExportResult",
    "Failure",
    "ImportResult",
    "ImportSource",
    "Selection",
    "SourceFile",
    "dry_run",
    "export_tree",
    "import_source",
    "open_source",
    "plan_export",
    "plan_import",
]
