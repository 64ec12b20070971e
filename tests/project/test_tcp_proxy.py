"""The suite's TCP proxy (tests/support/tcp_proxy.py) cuts cleanly: what the soak and the outage tests see as
an outage is refused or closed connections, never one left open that a client would wait on without end."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy, proxied


@pytest.fixture
def unanswering_target() -> Iterator[tuple[str, int]]:
    """A listening socket whose accept queue is full, so a connection to it stays in progress."""
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        target.listen(0)
        with socket.create_connection(target.getsockname()):  # fills the queue of one
            yield target.getsockname()


def wait_for_a_pipe(proxy: TcpProxy) -> None:
    deadline = time.monotonic() + 10
    while not proxy._pipes:
        assert time.monotonic() < deadline, "the proxy never accepted the client"
        time.sleep(0.01)


def test_a_cut_while_the_proxy_is_still_connecting_upstream_closes_the_clients_connection(
    unanswering_target: tuple[str, int],
) -> None:
    with proxied(*unanswering_target) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as client:
        wait_for_a_pipe(proxy)  # accepted; its connection to the target is under way
        proxy.stop()
        client.settimeout(10)
        with contextlib.suppress(ConnectionResetError):  # closed with a reset: as good
            assert client.recv(1) == b""
