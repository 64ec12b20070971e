"""What the credential commands (``token``, ``access-key``) share: their options and their listing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from blobstore.auth import tokens
from blobstore.cli import output
from blobstore.cli.app import Duration, options, run

if TYPE_CHECKING:
    from blobstore.auth.tokens import TokenInfo
    from blobstore.core.context import Core
    from blobstore.store import BlobStore


def _lifetime(_ctx: click.Context, _param: click.Parameter, seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def new_credential_options(allowed: tuple[str, ...], default: Sequence[str]) -> Callable[[Any], Any]:
    """``--scope LIST`` (some of ``allowed``), ``--expires DURATION`` and ``--name NAME``, for a create command."""

    def scopes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
        return tokens.validate_scopes((part.strip() for part in value.split(",") if part.strip()), allowed)

    def decorate(command: Any) -> Any:
        for option in reversed(
            (
                click.option(
                    "--scope",
                    "scopes",
                    default=",".join(default),
                    show_default=True,
                    callback=scopes,
                    metavar="LIST",
                    help=f"Comma-separated scopes, from {','.join(allowed)}.",
                ),
                click.option(
                    "--expires",
                    type=Duration(),
                    callback=_lifetime,
                    metavar="DURATION",
                    help="Lifetime, e.g. 30d, 12h, 2w (default: never).",
                ),
                click.option("--name", metavar="NAME", help="A note to recognise it by in `ls`."),
            )
        ):
            command = option(command)
        return command

    return decorate


def revoke_credential(revoke: Callable[[Core], Awaitable[TokenInfo]]) -> None:
    """Run ``revoke`` on the store and say what it did: revoked now, or (changing nothing) revoked before."""

    async def work(store: BlobStore) -> tuple[TokenInfo, datetime]:
        started = store.core.clock()
        return await revoke(store.core), started

    info, started = run(work)
    if options().json:
        output.echo_json(info.to_dict())
    elif info.revoked_at is not None and info.revoked_at < started:
        click.echo(f"{info.id} ({info.tenant}) was already revoked at {output.time_text(info.revoked_at)} UTC")
    else:
        click.echo(f"revoked {info.id} ({info.tenant})")


def echo_credentials(found: Sequence[TokenInfo]) -> None:
    """Print credentials as ``ls`` does: JSON with --json, else a table (never a secret)."""
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
