"""``blobstore db``: the metadata database itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run_async

if TYPE_CHECKING:
    from blobstore.core.config import Settings
    from blobstore.db.catalog_copy import CopiedCatalog
    from blobstore.db.engine import Database


@click.group()
def db() -> None:
    """Manage the metadata database (schema migrations, a verified copy into another database)."""


@db.command()
@common_options
def upgrade() -> None:
    """Bring the database schema to the newest version (SQLite or PostgreSQL).

    Safe to run again, and from several machines at once. Object storage is not touched.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from blobstore.core.context import open_database
    from blobstore.db import migrate

    settings = options().settings()

    async def work() -> bool:
        database = await open_database(settings)
        try:
            if await migrate.is_current(database):
                return False
            await migrate.upgrade(database)
            return True
        except DBAPIError as exc:
            raise click.ClickException(f"BLOBSTORE_DATABASE_URL: the migration failed: {exc.orig}") from exc
        finally:
            await database.dispose()

    upgraded = run_async(work)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    if options().json:
        output.echo_json({"database": shown, "upgraded": upgraded})
    else:
        click.echo(f"{'upgraded' if upgraded else 'already up to date:'} {shown}")


COMMANDS = [db]


@db.command()
@click.option("--to", "target_url", required=True, metavar="URL", help="The empty database to copy into.")
@common_options
def copy(target_url: str) -> None:
    """Copy the whole catalog into another, empty database (to move from SQLite to PostgreSQL).

    The target is migrated first, then filled in one transaction that commits only if every table's row
    count and sums match the source's. The source and the objects in storage are not changed: afterwards,
    point BLOBSTORE_DATABASE_URL at the target and keep BLOBSTORE_STORAGE_URL as it is.
    """
    from blobstore.db.catalog_copy import copy_catalog
    from blobstore.db.engine import Database

    settings = options().settings()
    normalized = _target_url(target_url, settings.database_url)
    _require_catalog(settings)
    target = Database(normalized)

    async def work() -> CopiedCatalog:
        source = Database(settings.database_url)
        try:
            await _bring_to_head(source, settings)
            return await copy_catalog(source, target)
        finally:
            await source.dispose()
            await target.dispose()

    copied = run_async(work)
    secret = _secret_setting(settings)
    if options().json:
        output.echo_json(
            {
                "target": target.shown_url,
                "revision": copied.revision,
                "rows": copied.rows,
                "settings": {
                    "BLOBSTORE_DATABASE_URL": target.shown_url,
                    "BLOBSTORE_STORAGE_URL": settings.storage_url,
                    "BLOBSTORE_SECRET_KEY": secret,
                },
            }
        )
        return
    click.echo(f"copied the catalog to {target.shown_url} (schema {copied.revision}); verified:")
    width = max(len(name) for name in copied.rows)
    for name, rows in copied.rows.items():
        click.echo(f"  {name:<{width}}  {rows} {'row' if rows == 1 else 'rows'}")
    click.echo("row counts and sums (ids, sizes, refcounts, usage) match the source.")
    click.echo("From now on, run every blobstore process and server of this store with:")
    click.echo(f"  BLOBSTORE_DATABASE_URL={target.shown_url}")
    click.echo(f"  BLOBSTORE_STORAGE_URL={settings.storage_url}  (unchanged: the objects stay where they are)")
    click.echo(f"  BLOBSTORE_SECRET_KEY={secret}")


def _target_url(url: str, source_url: str) -> str:
    """``--to`` normalized like BLOBSTORE_DATABASE_URL; ConfigurationError naming ``--to`` if unusable or the
    source itself."""
    from blobstore.core.config import normalize_database_url
    from blobstore.errors import ConfigurationError

    try:
        normalized = normalize_database_url(url)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("BLOBSTORE_DATABASE_URL", "--to", 1)) from None
    if normalized == source_url:
        raise ConfigurationError("--to names the configured database itself (BLOBSTORE_DATABASE_URL)")
    return normalized


def _require_catalog(settings: Settings) -> None:
    """ConfigurationError unless the configured database is one a catalog can be copied from."""
    from blobstore.errors import ConfigurationError

    if settings.database_is_ephemeral:
        raise ConfigurationError("BLOBSTORE_DATABASE_URL: an in-memory database has no catalog to copy")
    if (path := settings.sqlite_file) is not None and not path.is_file():
        raise ConfigurationError(
            f"no store at {settings.home}: {path} does not exist; set BLOBSTORE_HOME or BLOBSTORE_DATABASE_URL "
            "to the store to copy"
        )


async def _bring_to_head(source: Database, settings: Settings) -> None:
    """Migrate the embedded SQLite database as opening it would; require any other to be up to date."""
    from blobstore.db import migrate
    from blobstore.errors import ConfigurationError

    if settings.is_sqlite:
        await migrate.upgrade(source)
    elif not await migrate.is_current(source):
        raise ConfigurationError(
            "BLOBSTORE_DATABASE_URL: the database schema is not up to date; run `blobstore db upgrade`"
        )


def _secret_setting(settings: Settings) -> str:
    """How to set BLOBSTORE_SECRET_KEY after the move: the sealed signing and access keys need the same secret."""
    from blobstore.auth.sealing import KEY_FILE, VARIABLE

    if settings.secret_key is not None:
        return f"(as now: the same {VARIABLE})"
    if (path := settings.home / KEY_FILE).is_file():
        return f'"$(cat {path})"  (the secret the SQLite store kept; every server needs it)'
    return "(a random value of at least 32 characters, the same for every server)"
