"""The statement budget of the write path: a put is hash -> one transaction (dedup-bind, or reserve an upload)
-> write the bytes -> one transaction (commit), each a handful of statements (blobstore.db.binding).

Counted with SQLAlchemy's ``before_cursor_execute`` hook, leaving out the ``BEGIN IMMEDIATE`` the engine
issues on SQLite (the transaction runner's, not the write path's); a single put's two transactions run on the
driver connection (blobstore.db.hot_path), which reports its statements to the same hook. PostgreSQL spends
one statement more per general binding transaction that touches blobs: it locks their rows by id.
"""

from __future__ import annotations

from blobstore import BlobStore, PutItem
from blobstore.testing.statements import statements_sent

#: SQLite: lock the tenant (reading its usage), look up key + blobs, write the ref, count it, charge it, all in
#: one hand-off to SQLite's thread; PostgreSQL: one call of blobstore_put_one in autocommit (lock, look up,
#: lock the blobs, write, count, charge)
DEDUP_PUT = {"sqlite": 5, "postgresql": 1}
#: A new tenant's row: one INSERT more on SQLite; on PostgreSQL blobstore_put_one creates it
NEW_TENANT = {"sqlite": 1, "postgresql": 0}
#: the single-put binding finds no live blob and records the upload in the same transaction (SQLite: lock,
#: look up, insert the upload row; PostgreSQL: the same call of blobstore_put_one)
RESERVE = {"sqlite": 3, "postgresql": 1}
#: commit on the driver connection: SQLite: lock, look up (the upload too), insert the ref, count it, charge it;
#: PostgreSQL: the lookup call (locking the upload), the write statement
COMMIT = {"sqlite": 5, "postgresql": 2}
UNIQUE_PUT = {dialect: RESERVE[dialect] + COMMIT[dialect] for dialect in COMMIT}
#: lock the tenant, delete the ref (returning what it pointed at), release the blob, free the quota
DELETE = 4


def budget(store: BlobStore, statements: dict[str, int]) -> int:
    """The statement count for the store's database."""
    return statements[store.database.engine.dialect.name]


async def test_a_dedup_put_of_a_new_key_is_one_short_transaction(store: BlobStore) -> None:
    """Bytes the store holds, under a new key: one transaction of five statements (one call), nothing else."""
    acme = store.tenant("acme")
    await acme.put("seed", b"shared bytes")
    with statements_sent(store) as seen:
        info = await acme.put("again", b"shared bytes")
    assert info.deduplicated
    assert len(seen) == budget(store, DEDUP_PUT), seen


async def test_a_dedup_put_replacing_a_key_takes_no_more_statements(store: BlobStore) -> None:
    """Replacing a key with other stored bytes releases the old blob in the same statement that counts the new."""
    acme = store.tenant("acme")
    await acme.put("a", b"first bytes")
    await acme.put("b", b"other bytes, longer")
    with statements_sent(store) as seen:
        await acme.put("a", b"other bytes, longer")
    assert len(seen) == budget(store, DEDUP_PUT), seen
    assert await acme.get("a") == b"other bytes, longer"


async def test_a_dedup_put_of_a_new_tenant_adds_only_the_tenant_row(store: BlobStore) -> None:
    """A tenant's first put creates its row: one statement more on SQLite, none on PostgreSQL."""
    await store.tenant("acme").put("seed", b"shared bytes")
    with statements_sent(store) as seen:
        await store.tenant("newcomer").put("k", b"shared bytes")
    assert len(seen) == budget(store, DEDUP_PUT) + budget(store, NEW_TENANT), seen


async def test_a_unique_put_is_two_short_transactions(store: BlobStore) -> None:
    """New bytes: a single-put binding that finds no live blob and records the upload (three statements, one
    call on PostgreSQL), then five (two) committing it."""
    acme = store.tenant("acme")
    await acme.put("seed", b"warm the tenant row")
    with statements_sent(store) as seen:
        info = await acme.put("new", b"bytes nobody stored before")
    assert not info.deduplicated
    assert len(seen) == budget(store, UNIQUE_PUT), seen


async def test_a_batch_of_one_is_a_single_put(store: BlobStore) -> None:
    """put_many of one item sends exactly the statements of put."""
    acme = store.tenant("acme")
    await acme.put("seed", b"shared bytes")
    with statements_sent(store) as single:
        await acme.put("one", b"shared bytes")
    with statements_sent(store) as batch:
        await acme.put_many([PutItem("two", b"shared bytes")])
    assert len(batch) == len(single) == budget(store, DEDUP_PUT)


async def test_a_delete_takes_four_statements(store: BlobStore) -> None:
    acme = store.tenant("acme")
    await acme.put("doomed", b"bytes")
    with statements_sent(store) as seen:
        assert await acme.delete("doomed")
    assert len(seen) == DELETE, seen
