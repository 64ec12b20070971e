"""``blobstore db``: the metadata database itself."""

from __future__ import annotations

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run_async


@click.group()
def db() -> None:
    """Manage the metadata database (schema migrations)."""


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
