"""``python -m blobstore``: the same as the ``blobstore`` command."""

from blobstore.cli import main

main()
