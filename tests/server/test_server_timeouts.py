"""`blobstore serve` cannot be tied up without a token: a connection that sends nothing, half a header or half a
body is closed after a timeout (a half-sent PUT stores nothing), connections beyond a bound get a fast 503, and
the open-files limit is raised at start (blobstore.server.limits). Real ``blobstore serve`` processes, raw sockets.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli_helpers import invoke
from tests.support.live_server import Served, read_response, serve_process

#: The server's timeouts in these tests; every wait below is bounded by a multiple of them.
TIMEOUT = 1
#: How long a socket waits for the server to close it (many times the timeout, so a slow machine passes).
CLOSED_WITHIN = 20
MAX_CONNECTIONS = 8
SHORT = ("--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT), "--max-connections", str(MAX_CONNECTIONS))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """One server with 1 s timeouts and a bound of 8 connections, and a token of tenant acme."""
    home = tmp_path_factory.mktemp("timeouts")
    token = invoke(["token", "create", "acme"], home=home).ok().stdout.strip()
    with serve_process(home, *SHORT) as server:
        yield server, token


def connect(server: Served) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN)


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it does not in time)."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def test_an_idle_connection_is_closed(served: tuple[Served, str]) -> None:
    """A connection that sends nothing is closed, without an answer, once the header timeout passes."""
    with connect(served[0]) as conn:
        assert read_until_closed(conn) == b""


def test_a_half_sent_header_is_answered_408_and_closed(served: tuple[Served, str]) -> None:
    with connect(served[0]) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        assert read_until_closed(conn).startswith(b"HTTP/1.1 408 ")


def test_a_header_trickled_byte_by_byte_is_cut_all_the_same(served: tuple[Served, str]) -> None:
    """The header timeout bounds the whole header, however steadily its bytes arrive."""
    header = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 400
    with connect(served[0]) as conn:
        try:
            for byte in header:
                conn.sendall(bytes([byte]))
                time.sleep(0.02)  # 400 bytes take 8 s, far beyond the 1 s header timeout
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed it meanwhile
        assert read_until_closed(conn).startswith(b"HTTP/1.1 408 ")


def put_head(token: str, key: str, length: int) -> bytes:
    return (
        f"PUT /v1/tenants/acme/objects/{key} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_half_sent_body_is_answered_408_and_stores_nothing(served: tuple[Served, str]) -> None:
    server, token = served
    with connect(server) as conn:
        conn.sendall(put_head(token, "half", 1000) + b"x" * 500)
        answer = read_until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 ")
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/v1/tenants/acme/objects/half", headers=auth).status_code == 404


def test_a_slow_but_steady_body_is_not_cut(served: tuple[Served, str]) -> None:
    """A body whose bytes keep coming, each gap shorter than the body timeout, is stored however long it takes."""
    server, token = served
    chunks = [bytes([n]) * 100 for n in range(8)]
    with connect(server) as conn:
        conn.sendall(put_head(token, "steady", sum(map(len, chunks))))
        for chunk in chunks:  # 8 chunks 0.4 s apart: 3.2 s in all, three times the body timeout
            time.sleep(0.4)
            conn.sendall(chunk)
        assert read_response(conn).startswith(b"HTTP/1.1 201 ")
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/v1/tenants/acme/objects/steady", headers=auth).content == b"".join(chunks)


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(served: tuple[Served, str]) -> None:
    """Between requests the keep-alive timeout (75 s) applies, not the header timeout: the header timeout starts
    with the next request's first byte."""
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    with connect(served[0]) as conn:
        conn.sendall(request)
        assert read_response(conn).startswith(b"HTTP/1.1 200 ")
        time.sleep(TIMEOUT * 2.5)
        conn.sendall(request)
        assert read_response(conn).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
def test_connections_beyond_the_bound_get_a_fast_503_and_the_server_recovers(served: tuple[Served, str]) -> None:
    """With the bound held by idle connections, /healthz is answered 503 at once (it does not hang); once the
    header timeout has closed them, it is answered 200 again."""
    server = served[0]
    idle = [connect(server) for _ in range(MAX_CONNECTIONS * 3)]
    try:
        response = httpx.get(f"{server.url}/healthz", timeout=CLOSED_WITHIN)
        assert response.status_code == 503
        assert response.headers["connection"] == "close"
        for conn in idle:
            assert read_until_closed(conn) == b""
    finally:
        for conn in idle:
            conn.close()
    assert httpx.get(f"{server.url}/healthz", timeout=CLOSED_WITHIN).status_code == 200


def max_open_files(pid: int) -> tuple[int, int]:
    """The soft and hard open-files limits of process ``pid`` (from /proc/PID/limits)."""
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line)
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_open_files_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, hard, 512)
    if lowered == hard:
        pytest.skip("the hard open-files limit is no higher than the lowered soft one")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))

    with serve_process(tmp_path, preexec=lower) as server:
        assert max_open_files(server.process.pid) == (hard, hard)


def test_serve_defaults_are_the_servers() -> None:
    """`blobstore serve` states its defaults without loading the server stack; they are blobstore.server's."""
    from blobstore.cli import serve
    from blobstore.server import connections

    assert (serve.HEADER_TIMEOUT_SECONDS, serve.BODY_TIMEOUT_SECONDS, serve.MAX_CONNECTIONS) == (
        connections.HEADER_TIMEOUT_SECONDS,
        connections.BODY_TIMEOUT_SECONDS,
        connections.MAX_CONNECTIONS,
    )
