"""``blobstore token``: create, list and revoke the API tokens of the HTTP service."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import click

from blobstore.auth import tokens
from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_argument
from blobstore.cli.credentials import echo_credentials, new_credential_options, revoke_credential

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.store import BlobStore


@click.group()
def token() -> None:
    """API tokens of the HTTP service (`blobstore serve`)."""


@token.command()
@tenant_argument
@new_credential_options(tokens.SCOPES, tokens.DEFAULT_SCOPES)
@common_options
def create(tenant: str, scopes: tuple[str, ...], expires: timedelta | None, name: str | None) -> None:
    """Create a token for TENANT and print it (only it, for scripts); it is shown only this once.

    \b
      blobstore token create acme --scope read,write --expires 30d --name ci
    """

    async def work(store: BlobStore) -> tokens.NewToken:
        return await tokens.create(store.core, tenant, scopes=scopes, expires_in=expires, name=name)

    new = run(work, creates=True)
    if options().json:
        output.echo_json({"token": new.token, **new.info.to_dict()})
        return
    click.echo(new.token)


@token.command("ls")
@click.argument("tenant", required=False)
@common_options
def ls(tenant: str | None) -> None:
    """Every token (or every token of TENANT), revoked and expired ones included; never their secrets."""
    echo_credentials(run(lambda store: tokens.list_tokens(store.core, tenant)))


@token.command()
@click.argument("token_id", metavar="TOKEN_ID")
@common_options
def revoke(token_id: str) -> None:
    """Revoke a token by its id (see `token ls`); every server refuses it from now on."""
    revoke_credential(lambda core: tokens.revoke(core, token_id))


COMMANDS = [token]
