"""s3fs (fsspec's S3 filesystem, on aiobotocore) against a real server: a tree put and got back, listings by
folder, glob and find, file objects written and read, info, copy, removal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
import s3fs

from tests.support.s3_api import S3Server, s3_serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server on a fresh home."""
    with s3_serving(tmp_path_factory.mktemp("s3-s3fs")) as served:
        yield served


@pytest.fixture
def options(server: S3Server) -> dict[str, object]:
    """s3fs's options for a new access key of acme, without its listings cache (every call asks the server)."""
    key_id, secret = server.access_key()
    return {
        "key": key_id,
        "secret": secret,
        "endpoint_url": server.s3_url,
        "client_kwargs": {"region_name": "us-east-1"},
        "use_listings_cache": False,
        "skip_instance_cache": True,
    }


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_a_tree_round_trips_and_lists(options: dict[str, object], tmp_path: Path) -> None:
    """mkdir (a bucket); put -r of 60 files; ls by folder; find; glob; get -r gives the same tree; rm -r."""
    fs = s3fs.S3FileSystem(**options)
    source = tmp_path / "up"
    for index in range(60):
        path = source / f"part={index % 3}" / f"chunk-{index:03}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + index * 50))
    fs.mkdir("s3fs-tree")
    fs.put(str(source) + "/", "s3fs-tree/data/", recursive=True)
    assert fs.ls("s3fs-tree/data", detail=False) == [f"s3fs-tree/data/part={index}" for index in range(3)]
    assert len(fs.ls("s3fs-tree/data/part=1", detail=False)) == 20
    assert len(fs.find("s3fs-tree")) == 60
    assert fs.glob("s3fs-tree/data/part=2/chunk-01*.parquet") == [
        f"s3fs-tree/data/part=2/chunk-{index:03}.parquet" for index in (11, 14, 17)
    ]
    assert fs.info("s3fs-tree/data/part=0")["type"] == "directory"
    assert fs.info("s3fs-tree/data/part=0/chunk-000.parquet")["size"] == 100
    down = tmp_path / "down"
    fs.get("s3fs-tree/data/", str(down) + "/", recursive=True)
    assert _tree(down) == _tree(source)
    fs.rm("s3fs-tree/data", recursive=True)
    assert fs.find("s3fs-tree") == []
    fs.rmdir("s3fs-tree")
    assert not fs.exists("s3fs-tree")


def test_file_objects_copy_and_fsspec_urls(options: dict[str, object]) -> None:
    """fsspec.open writes and reads s3:// URLs; seek and partial reads; pipe/cat; copy; exists after rm."""
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("s3fs-files")
    data = os.urandom(300_000)
    with fsspec.open("s3://s3fs-files/big.bin", "wb", **options) as out:
        for start in range(0, len(data), 65536):
            out.write(data[start : start + 65536])
    with fsspec.open("s3://s3fs-files/big.bin", "rb", **options) as read_back:
        read_back.seek(1000)
        assert read_back.read(500) == data[1000:1500]
        read_back.seek(-10, os.SEEK_END)
        assert read_back.read() == data[-10:]
    fs.pipe("s3fs-files/small.txt", b"tiny")
    assert fs.cat("s3fs-files/small.txt") == b"tiny"
    fs.pipe("s3fs-files/a+b & c=d €uro ~%25;(x).txt", b"odd name")
    assert fs.cat("s3fs-files/a+b & c=d €uro ~%25;(x).txt") == b"odd name"
    fs.copy("s3fs-files/small.txt", "s3fs-files/copied/small.txt")
    assert fs.cat("s3fs-files/copied/small.txt") == b"tiny"
    assert fs.cat_file("s3fs-files/big.bin", start=5, end=25) == data[5:25]
    fs.rm("s3fs-files/small.txt")
    assert not fs.exists("s3fs-files/small.txt")
    assert fs.exists("s3fs-files/copied")
