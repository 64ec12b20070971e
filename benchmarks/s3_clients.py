"""The load generator of the S3 API benchmarks (S1, S3): boto3 clients on threads of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Batch
from benchmarks.http_servers import S3Endpoint

#: One thread's request: ``(client, thread number, request number) -> None``.
Request = Callable[[Any, int, int], None]


def boto3_client(endpoint: S3Endpoint) -> Any:
    """A boto3 S3 client of ``endpoint`` with boto3's default configuration, path-style addressing."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def threaded(clients: list[Any], requests_per_client: int, request: Request) -> Batch:
    """A batch: each client, on a thread of its own, sends ``requests_per_client`` requests back to back; the
    seconds from the moment all threads are ready until the last one is done."""

    def run() -> float:
        ready = threading.Barrier(len(clients) + 1)
        failures: list[BaseException] = []

        def work(number: int, client: Any) -> None:
            ready.wait()
            try:
                for sent in range(requests_per_client):
                    request(client, number, sent)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=work, args=pair) for pair in enumerate(clients)]
        for thread in threads:
            thread.start()
        ready.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return time.perf_counter() - started

    async def batch() -> float:
        return await asyncio.to_thread(run)

    return batch
