"""``blobstore spool``: what the nodes' spools hold (docs/spool.md), and draining this node's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blobstore.cli import output
from blobstore.cli.app import common_options, options, run
from blobstore.model.wording import counted

if TYPE_CHECKING:  # the store loads when a command runs, not for --help
    from blobstore.db.spool import NodeSpool
    from blobstore.protocol.drain import DrainStats
    from blobstore.store import BlobStore


@click.group()
def spool() -> None:
    """Puts kept on a node's disk while object storage was unreachable (BLOBSTORE_SPOOL_DIR)."""


@spool.command()
@common_options
def status() -> None:
    """Per node: the blobs its spool holds, their bytes, and when the oldest was stored."""

    async def work(store: BlobStore) -> list[NodeSpool]:
        return await store.spool_status()

    nodes = run(work)
    if options().json:
        output.echo_json(
            [
                {
                    "node_id": node.node_id,
                    "blobs": node.blobs,
                    "bytes": node.bytes,
                    "oldest": None if node.oldest is None else node.oldest.isoformat(),
                }
                for node in nodes
            ]
        )
        return
    if not nodes:
        click.echo("no node holds spooled blobs")
        return
    click.echo(f"{'NODE':<24}  {'BLOBS':>8}  {'BYTES':>10}  OLDEST")
    for node in nodes:
        oldest = "" if node.oldest is None else output.time_text(node.oldest)
        click.echo(f"{node.node_id:<24}  {node.blobs:>8}  {output.size_text(node.bytes):>10}  {oldest}")


@spool.command()
@common_options
def drain() -> None:
    """Move the blobs spooled on this node (BLOBSTORE_NODE_ID) into object storage and free the spool."""

    async def work(store: BlobStore) -> DrainStats:
        return await store.drain_spool()

    stats = run(work)
    if options().json:
        output.echo_json(stats.to_dict())
        return
    click.echo(
        f"drained {counted(stats.blobs_drained, 'blob')} ({output.size_text(stats.bytes_drained)}) into object "
        f"storage; removed {counted(stats.leftovers_removed, 'leftover spool file')}"
    )


COMMANDS = [spool]
