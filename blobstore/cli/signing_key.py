"""``blobstore signing-key``: the keys that sign URLs (every server of the store shares them): list, rotate, retire."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.auth.signing import SigningKeyInfo
    from blobstore.store import BlobStore


@click.group("signing-key")
def signing_key() -> None:
    """Keys that sign URLs for the HTTP service (`blobstore serve`)."""


@signing_key.command("ls")
@common_options
def ls() -> None:
    """The keys that verify URLs, newest first: the current one signs, superseded ones only verify."""

    async def work(store: BlobStore) -> list[SigningKeyInfo]:
        from blobstore.auth import signing

        return await signing.list_keys(store.core)

    keys = run(work)
    if options().json:
        output.echo_json([info.to_dict() for info in keys])
        return
    click.echo(f"{'ID':<16}  {'CREATED':<19}  STATUS")
    for info in keys:
        status = "current" if info.superseded_at is None else f"superseded {output.time_text(info.superseded_at)}"
        click.echo(f"{info.id:<16}  {output.time_text(info.created_at):<19}  {status}")


@signing_key.command()
@common_options
def rotate() -> None:
    """Make a new key sign from now on; URLs signed with earlier keys keep working until they expire."""

    async def work(store: BlobStore) -> SigningKeyInfo:
        from blobstore.auth import signing

        return await signing.rotate(store.core)

    info = run(work, creates=True)
    if options().json:
        output.echo_json(info.to_dict())
        return
    click.echo(f"signing key {info.id} is current")


@signing_key.command()
@click.argument("key_id", metavar="ID")
@common_options
def retire(key_id: str) -> None:
    """Delete the key ID (see `signing-key ls`): every URL it signed stops working on every server."""

    async def work(store: BlobStore) -> SigningKeyInfo:
        from blobstore.auth import signing

        return await signing.retire(store.core, key_id)

    info = run(work)
    if options().json:
        output.echo_json(info.to_dict())
        return
    click.echo(f"signing key {info.id} retired: every URL it signed stops working")


COMMANDS = [signing_key]
