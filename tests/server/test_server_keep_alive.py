"""`blobstore serve` keeps an idle connection open longer than HTTP clients keep it for reuse.

httpx (and so BlobClient) reuses an idle connection for up to 5 s, uvicorn's default keep-alive timeout
was 5 s too: a request sent on a connection just as the server timed it out failed with "Server
disconnected without sending a response" (the H4 load benchmark saw one in 13,000 GETs). The server's
timeout must outlast the clients' (and load balancers', typically 60 s) so the client is always the side
that closes an idle connection.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from blobstore.cli.serve import KEEP_ALIVE_SECONDS
from tests.support.live_server import read_response, serve_process

#: httpx's default ``keepalive_expiry``, which BlobClient uses.
CLIENT_KEEP_ALIVE_SECONDS = 5.0

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


def test_a_connection_idle_past_the_clients_keep_alive_is_still_served(tmp_path: Path) -> None:
    """A second request on one connection, sent after it idled a second longer than httpx reuses one, is answered."""
    assert KEEP_ALIVE_SECONDS >= 60  # outlasts clients (5 s) and load balancers in front of the server (60 s)
    with serve_process(tmp_path / "home") as served:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(REQUEST)
            assert read_response(conn).startswith(b"HTTP/1.1 200")
            time.sleep(CLIENT_KEEP_ALIVE_SECONDS + 1)
            conn.sendall(REQUEST)
            assert read_response(conn).startswith(b"HTTP/1.1 200")
