"""The access-log lines of the servers running in this process, caught as they are logged.

A server logs a request's line (blobstore.server.access) once it is done with the request: its answer
sent, its metrics recorded, whatever it stored or discarded settled. A client can hear the answer
before that, so a test that asserts on what the server did after the request waits for the line::

    with access_log() as log:
        await http.get("/healthz", headers={"x-request-id": "probe"})
        line = await log.line_of("probe")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from blobstore.server.access import log as server_log


class AccessLog(logging.Handler):
    """Every access-log line logged while it is installed, in order, as parsed JSON."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self._arrived = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._arrived:
            self.lines.append(json.loads(record.getMessage()))
            self._arrived.notify_all()

    async def line_of(self, request_id: str, timeout: float = 60) -> dict[str, Any]:
        """The line of the request sent with this ``X-Request-Id``, once it is logged (AssertionError after
        ``timeout`` seconds)."""
        return await asyncio.to_thread(self._wait_for, request_id, timeout)

    def _wait_for(self, request_id: str, timeout: float) -> dict[str, Any]:
        with self._arrived:
            found = self._arrived.wait_for(lambda: self._find(request_id), timeout)
        assert found, f"the server did not finish request {request_id!r} within {timeout} s"
        return found

    def _find(self, request_id: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line["request_id"] == request_id), None)


@contextlib.contextmanager
def access_log() -> Iterator[AccessLog]:
    """Catch the access-log lines logged within the block (the logger at INFO meanwhile)."""
    handler, level = AccessLog(), server_log.level
    server_log.setLevel(logging.INFO)
    server_log.addHandler(handler)
    try:
        yield handler
    finally:
        server_log.removeHandler(handler)
        server_log.setLevel(level)
