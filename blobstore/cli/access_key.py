"""``blobstore access-key``: create, list and revoke the access keys of the S3 API (`blobstore serve --s3-port`)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import click

from blobstore.auth import access_keys
from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_argument
from blobstore.cli.credentials import echo_credentials, new_credential_options, revoke_credential

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.store import BlobStore


@click.group("access-key")
def access_key() -> None:
    """Access keys of the S3 API (`blobstore serve --s3-port`)."""


@access_key.command()
@tenant_argument
@new_credential_options(access_keys.SCOPES, access_keys.SCOPES)
@common_options
def create(tenant: str, scopes: tuple[str, ...], expires: timedelta | None, name: str | None) -> None:
    """Create an access key for TENANT and print its id and secret; the secret is shown only this once.

    \b
      blobstore access-key create acme --scope read,write --expires 90d --name backup
    """

    async def work(store: BlobStore) -> access_keys.NewAccessKey:
        return await access_keys.create(store.core, tenant, scopes=scopes, expires_in=expires, name=name)

    new = run(work, creates=True)
    if options().json:
        output.echo_json({"access_key_id": new.info.id, "secret_access_key": new.secret, **new.info.to_dict()})
        return
    click.echo(f"access key id:     {new.info.id}\nsecret access key: {new.secret}")


@access_key.command("ls")
@click.argument("tenant", required=False)
@common_options
def ls(tenant: str | None) -> None:
    """Every access key (or every one of TENANT), revoked and expired ones included; never their secrets."""
    echo_credentials(run(lambda store: access_keys.list_keys(store.core, tenant)))


@access_key.command()
@click.argument("key_id", metavar="ID")
@common_options
def revoke(key_id: str) -> None:
    """Revoke an access key by its id (see `access-key ls`); every server refuses it from the next request on."""
    revoke_credential(lambda core: access_keys.revoke(core, key_id))


COMMANDS = [access_key]
