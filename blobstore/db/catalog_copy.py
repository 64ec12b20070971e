"""Copying a whole catalog (every table the migrations create) from one database to another.

The move from the embedded SQLite database to PostgreSQL (``blobstore db copy``):
the target must hold no catalog rows; it is migrated to the source's revision,
then filled table by table in batches (bounded memory) inside one transaction
that commits only once every table's row count and integer sums (ids, sizes,
refcounts, usage) agree with the source's. Ids are kept, and PostgreSQL's
sequences are moved past them. The objects in storage are not touched: the
copy belongs to the same storage, through the ``store_meta`` row it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, Table, func, insert, inspect, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import migrate
from blobstore.db.engine import Database
from blobstore.db.models import Base
from blobstore.errors import ConfigurationError, IntegrityError

#: Rows read from the source and written to the target at a time.
BATCH_ROWS = 1000

#: Per table: the row count, then the sum of each integer column, in column order.
Figures = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class CopiedCatalog:
    """What a finished copy wrote: the schema revision and the rows of each table (by table name)."""

    revision: str
    rows: dict[str, int]


async def copy_catalog(source: Database, target: Database, *, batch_rows: int = BATCH_ROWS) -> CopiedCatalog:
    """Copy every row of ``source`` (at the newest schema) into the empty ``target``, verified.

    ConfigurationError, with nothing written, if the target already holds catalog rows; IntegrityError, with
    the copy rolled back, if the target's counts or sums differ from the source's afterwards.
    """
    held = await target.read(_rows_held)
    if held:
        listed = ", ".join(f"{name} ({rows})" for name, rows in sorted(held.items()))
        raise ConfigurationError(
            f"the target database {target.shown_url} already holds a catalog (rows in {listed}); "
            "copy into an empty database"
        )
    await migrate.upgrade(target)

    async def in_one_snapshot(reading: AsyncConnection) -> Figures:
        async with target.engine.begin() as writing:
            for table in Base.metadata.sorted_tables:
                await _copy_table(table, reading, writing, batch_rows)
            if writing.dialect.name == "postgresql":
                await _advance_sequences(writing)
            expected, found = await _figures(reading), await _figures(writing)
            if expected != found:
                raise IntegrityError(_mismatch(expected, found))
            return found

    figures = await source.snapshot(in_one_snapshot)
    return CopiedCatalog(migrate.head(), {name: figures[name][0] for name in sorted(figures)})


async def _rows_held(conn: AsyncConnection) -> dict[str, int]:
    """Tables of the catalog that exist in ``conn``'s database and hold rows, with their row counts."""
    present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    held: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in present and (rows := await conn.scalar(select(func.count()).select_from(table))):
            held[table.name] = rows
    return held


async def _copy_table(table: Table, reading: AsyncConnection, writing: AsyncConnection, batch_rows: int) -> None:
    """Copy ``table`` in primary-key order, ``batch_rows`` at a time (each batch starts after the last key)."""
    key = list(table.primary_key.columns)
    query = select(table).order_by(*key).limit(batch_rows)
    batch = (await reading.execute(query)).all()
    while batch:
        await writing.execute(
            insert(table), [{column.key: row._mapping[column] for column in table.columns} for row in batch]
        )
        last = tuple(batch[-1]._mapping[column] for column in key)
        batch = (await reading.execute(query.where(tuple_(*key) > tuple_(*last)))).all()


async def _advance_sequences(writing: AsyncConnection) -> None:
    """Move each autoincrementing id's PostgreSQL sequence past the largest id copied."""
    for table in Base.metadata.sorted_tables:
        if (column := table.autoincrement_column) is not None:
            await writing.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE(MAX({column.name}), 0) + 1, false) FROM {table.name}"
                )
            )


async def _figures(conn: AsyncConnection) -> Figures:
    """Each table's row count and the sums of its integer columns (ids, sizes, refcounts, usage, quotas)."""
    figures: Figures = {}
    for table in Base.metadata.sorted_tables:
        sums = [func.coalesce(func.sum(column), 0) for column in table.columns if isinstance(column.type, Integer)]
        row = (await conn.execute(select(func.count(), *sums).select_from(table))).one()
        figures[table.name] = tuple(int(value) for value in row)
    return figures


def _mismatch(expected: Figures, found: Figures) -> str:
    differing = [name for name in expected if expected[name] != found.get(name)]
    details = "; ".join(f"{name}: source {expected[name]}, target {found.get(name)}" for name in differing)
    return f"the copy does not match the source and was rolled back ({details})"
