"""The blobstore command line: ``blobstore`` (and ``python -m blobstore``).

Each command module defines click commands and lists them in ``COMMANDS``;
add a module to :data:`COMMAND_MODULES` to give its commands to ``blobstore``.
Commands appear in ``blobstore --help`` in this order.
"""

from types import ModuleType

from blobstore.cli import (
    access_key,
    db,
    lifecycle,
    maintenance,
    objects,
    report,
    serve,
    signing_key,
    spool,
    tenant,
    token,
    transfer,
)
from blobstore.cli.app import cli

#: The modules whose ``COMMANDS`` make up ``blobstore``; gc, fsck, report and tenant modules go here too.
COMMAND_MODULES: list[ModuleType] = [
    objects,
    transfer,
    maintenance,
    lifecycle,
    report,
    tenant,
    token,
    access_key,
    signing_key,
    serve,
    spool,
    db,
]

for _module in COMMAND_MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """The console-script entry point: run ``blobstore`` on ``sys.argv`` and exit."""
    cli.main()


__all__ = ["cli", "main"]
