"""``blobstore signing-key``: rotate the key that signs URLs (every server of the store shares it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.signing import SigningKeyInfo
    from blobstore.store import BlobStore


@click.group("signing-key")
def signing_key() -> None:
    """Keys that sign URLs for the HTTP service (`blobstore serve`)."""


@signing_key.command()
@common_options
def rotate() -> None:
    """Make a new key sign from now on; URLs signed with earlier keys keep working until they expire."""

    async def work(store: BlobStore) -> SigningKeyInfo:
        from blobstore import signing

        return await signing.rotate(store)

    info = run(work)
    if options().json:
        output.echo_json(info.to_dict())
        return
    click.echo(f"signing key {info.id} is current")


COMMANDS = [signing_key]
