"""Servers for the HTTP benchmarks (H1-H3, PEER-HTTP), each in a process of its own on a loopback port.

``blobstore_server(home)`` runs ``blobstore serve`` (one process, SQLite + a local
directory in ``home``) and hands back its URL, a read/write token and its pid;
``bare_server()`` runs the baseline of H1, a bare Starlette app on uvicorn that
answers every GET with 4 KiB from memory (:mod:`benchmarks.bare_app`);
``svc_infra_server(home)`` runs the baseline of PEER-HTTP, svc-infra's storage
routes over a directory in ``home`` (:mod:`benchmarks.svc_infra_app`);
``blobstore_server(home, s3=True)`` serves the S3 API too (S1, S3), with an access key of
tenant ``bench``, and ``moto_server()`` runs moto's S3 server, the baseline of S3.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from blobstore.cli.serve import KEEP_ALIVE_SECONDS

REPO = Path(__file__).resolve().parents[1]
#: Longest a server may take to answer its health check (a busy shared machine imports slowly).
STARTUP_SECONDS = 300


@dataclass(frozen=True)
class Server:
    """A running server: its base URL, a token of tenant ``bench`` (None for the bare app) and its pid."""

    url: str
    token: str | None
    pid: int
    #: The S3 API's endpoint, when the server serves it.
    s3: S3Endpoint | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class S3Endpoint:
    """An S3 endpoint and the credentials of its tenant ``bench``."""

    url: str
    access_key_id: str
    secret_access_key: str


def _uvicorn(app: str) -> list[str]:
    """uvicorn serving ``app`` with what ``blobstore serve`` sets too: its log level and its keep-alive timeout
    (uvicorn's default of 5 s equals httpx's own, so a kept-alive connection could close under a request)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--log-level",
        "info",
        "--timeout-keep-alive",
        str(KEEP_ALIVE_SECONDS),
    ]


def _env(home: Path | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("BLOBSTORE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    if home is not None:
        env["BLOBSTORE_HOME"] = str(home)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process(
    args: list[str], env: dict[str, str], health_path: str, *, port_flag: str = "--port"
) -> Iterator[tuple[str, int]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*args, port_flag, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(url + health_path).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextlib.contextmanager
def blobstore_server(home: Path, database_url: str | None = None, *, s3: bool = False) -> Iterator[Server]:
    """``blobstore serve`` over SQLite (or ``database_url``) + a directory in ``home``, with a read/write token
    of tenant ``bench``; with ``s3``, the S3 API on a port of its own too, with an access key of ``bench``."""
    home.mkdir(parents=True, exist_ok=True)
    env = _env(home)
    if database_url is not None:
        env["BLOBSTORE_DATABASE_URL"] = database_url
    subprocess.run([sys.executable, "-m", "blobstore", "db", "upgrade"], env=env, capture_output=True, check=True)
    token = _blobstore(env, "token", "create", "bench", "--scope", "read,write,delete").strip()
    args = [sys.executable, "-m", "blobstore", "serve"]
    endpoint = None
    if s3:
        key = json.loads(_blobstore(env, "--json", "access-key", "create", "bench", "--scope", "read,write,delete"))
        s3_port = _free_port()
        args += ["--s3-port", str(s3_port)]
        endpoint = S3Endpoint(f"http://127.0.0.1:{s3_port}", key["access_key_id"], key["secret_access_key"])
    with _process(args, env, "/healthz") as (url, pid):
        yield Server(url, token, pid, endpoint)


def _blobstore(env: dict[str, str], *args: str) -> str:
    """The output of a ``blobstore`` command."""
    command = [sys.executable, "-m", "blobstore", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def moto_server() -> Iterator[Server]:
    """moto's S3 server (werkzeug, threaded, objects in memory), with its dummy credentials."""
    with _process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1"], _env(None), "/", port_flag="-p") as (
        url,
        pid,
    ):
        yield Server(url, None, pid, S3Endpoint(url, "testing", "testing"))


@contextlib.contextmanager
def bare_server() -> Iterator[Server]:
    """The baseline: uvicorn + a bare Starlette app returning 4 KiB from memory."""
    with _process(_uvicorn("benchmarks.bare_app:app"), _env(None), "/") as (url, pid):
        yield Server(url, None, pid)


@contextlib.contextmanager
def svc_infra_server(home: Path) -> Iterator[Server]:
    """The baseline of PEER-HTTP: svc-infra's storage routes on uvicorn (one worker), storing into ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = _env(None)
    env.update(STORAGE_BASE_PATH=str(home), STORAGE_BASE_URL="http://127.0.0.1/files")
    with _process(_uvicorn("benchmarks.svc_infra_app:app"), env, "/openapi.json") as (url, pid):
        yield Server(url, None, pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields
