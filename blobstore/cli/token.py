"""``blobstore token``: create, list and revoke the API tokens of the HTTP service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from blobstore.auth import tokens
from blobstore.cli import output
from blobstore.cli.app import common_options, options, run, tenant_argument

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.store import BlobStore

_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType[timedelta]):
    """A lifetime such as 3600s, 90m, 12h, 30d or 2w."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.fullmatch(str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a duration: use e.g. 3600s, 90m, 12h, 30d, 2w", param, ctx)
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _scopes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    return tokens.validate_scopes(part.strip() for part in value.split(",") if part.strip())


@click.group()
def token() -> None:
    """API tokens of the HTTP service (`blobstore serve`)."""


@token.command()
@tenant_argument
@click.option(
    "--scope",
    "scopes",
    default=",".join(tokens.DEFAULT_SCOPES),
    show_default=True,
    callback=_scopes,
    metavar="LIST",
    help=f"Comma-separated scopes, from {','.join(tokens.SCOPES)}.",
)
@click.option("--expires", type=Duration(), metavar="DURATION", help="Lifetime, e.g. 30d, 12h (default: never).")
@click.option("--name", metavar="NAME", help="A note to recognise the token by in `token ls`.")
@common_options
def create(tenant: str, scopes: tuple[str, ...], expires: timedelta | None, name: str | None) -> None:
    """Create a token for TENANT and print it (only it, for scripts); it is shown only this once.

    \b
      blobstore token create acme --scope read,write --expires 30d --name ci
    """

    async def work(store: BlobStore) -> tokens.NewToken:
        return await tokens.create(store.core, tenant, scopes=scopes, expires_in=expires, name=name)

    new = run(work)
    if options().json:
        output.echo_json({"token": new.token, **new.info.to_dict()})
        return
    click.echo(new.token)


@token.command("ls")
@click.argument("tenant", required=False)
@common_options
def ls(tenant: str | None) -> None:
    """Every token (or every token of TENANT), revoked and expired ones included; never their secrets."""
    found = run(lambda store: tokens.list_tokens(store.core, tenant))
    if options().json:
        output.echo_json([info.to_dict() for info in found])
        return
    now = datetime.now(UTC)
    rows = [("ID", "TENANT", "SCOPES", "CREATED", "EXPIRES", "STATUS", "NAME")]
    for info in found:
        status = "revoked" if info.revoked_at is not None else "active" if info.active(now) else "expired"
        rows.append(
            (
                info.id,
                info.tenant,
                ",".join(info.scopes),
                output.time_text(info.created_at),
                "-" if info.expires_at is None else output.time_text(info.expires_at),
                status,
                info.name or "",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@token.command()
@click.argument("token_id", metavar="TOKEN_ID")
@common_options
def revoke(token_id: str) -> None:
    """Revoke a token by its id (see `token ls`); every server refuses it from now on."""
    info = run(lambda store: tokens.revoke(store.core, token_id))
    if options().json:
        output.echo_json(info.to_dict())
        return
    click.echo(f"revoked {info.id} ({info.tenant})")


COMMANDS = [token]
