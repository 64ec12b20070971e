"""The aws CLI (v1, in ``.venv-awscli`` of its own: it pins botocore) against a real server: ``aws s3`` mb, cp,
sync, ls, rm and rb over a tree of many files, and ``aws s3api`` calls.

The CLI is found at ``$BLOBSTORE_TEST_AWS_CLI``, else ``.venv-awscli/bin/aws`` (``scripts/bootstrap dev``
installs it); without it the tests skip, or fail under ``BLOBSTORE_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_helpers import REPO
from tests.support.s3_api import S3Server, s3_serving
from tests.support.stores import unavailable


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real server on a fresh home."""
    with s3_serving(tmp_path_factory.mktemp("s3-awscli")) as served:
        yield served


@pytest.fixture(scope="module")
def aws(server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``aws ARGS`` against the server as one access key of acme: its stdout, or a failed test with stderr."""
    executable = Path(os.environ.get("BLOBSTORE_TEST_AWS_CLI") or REPO / ".venv-awscli" / "bin" / "aws")
    if not executable.exists():
        unavailable(f"no aws CLI at {executable} (scripts/bootstrap dev installs it)")
    key_id, secret = server.access_key()
    config = tmp_path_factory.mktemp("aws-config")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(config),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def run(*args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [str(executable), "--endpoint-url", server.s3_url, *args], env=env, capture_output=True, timeout=120
        )
        if ok:
            assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr.decode()}"
        else:
            assert done.returncode != 0, f"aws {' '.join(args)} succeeded"
            return done.stderr.decode()
        return done.stdout.decode()

    return run


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_s3_commands_round_trip_a_tree(aws: Any, tmp_path: Path) -> None:
    """mb; sync up 124 files in nested folders (some with +, &, =, €, %, ; in their names); ls with and
    without --recursive; sync down the same tree; cp both ways; rm one and --recursive; rb."""
    source = tmp_path / "up"
    for index in range(120):
        path = source / f"dir{index % 4}" / f"sub{index % 3}" / f"file {index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(index * 97))
    (source / "top.txt").write_text("top level")
    for odd in ("a+b & c=d.txt", "€uro ~tilde%25.txt", "semi;colon,comma!(x)'.txt"):
        (source / "odd" / odd).parent.mkdir(exist_ok=True)
        (source / "odd" / odd).write_text(odd)
    aws("s3", "mb", "s3://cli-tree")
    aws("s3", "sync", str(source), "s3://cli-tree/")
    top = aws("s3", "ls", "s3://cli-tree/").splitlines()
    assert sorted(line.split()[-1] for line in top) == ["dir0/", "dir1/", "dir2/", "dir3/", "odd/", "top.txt"]
    assert sorted(line.split()[-1] for line in aws("s3", "ls", "s3://cli-tree/dir2/").splitlines()) == [
        "sub0/",
        "sub1/",
        "sub2/",
    ]
    assert len(aws("s3", "ls", "--recursive", "s3://cli-tree/").splitlines()) == 124
    assert aws("s3", "sync", str(source), "s3://cli-tree/") == ""  # nothing changed: nothing to send
    down = tmp_path / "down"
    aws("s3", "sync", "s3://cli-tree/", str(down))
    assert _tree(down) == _tree(source)
    aws("s3", "cp", str(source / "top.txt"), "s3://cli-tree/copies/top copy.txt")
    aws("s3", "cp", "s3://cli-tree/copies/top copy.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "top level"
    aws("s3", "rm", "s3://cli-tree/top.txt")
    assert "top.txt" not in aws("s3", "ls", "s3://cli-tree/")
    assert "BucketNotEmpty" in aws("s3", "rb", "s3://cli-tree", ok=False)
    aws("s3", "rm", "--recursive", "s3://cli-tree/")
    assert aws("s3", "ls", "--recursive", "s3://cli-tree/") == ""
    aws("s3", "rb", "s3://cli-tree")
    assert "cli-tree" not in aws("s3", "ls")


def test_s3api_calls(aws: Any, tmp_path: Path) -> None:
    """create-bucket, put-object with metadata, head-object, get-object, copy-object, list-objects-v2 with a
    delimiter, delete-objects, conditional put-object."""
    aws("s3api", "create-bucket", "--bucket", "cli-api")
    body = tmp_path / "body.json"
    body.write_text('{"n": 1}')
    put_args = ("s3api", "put-object", "--bucket", "cli-api", "--key", "a/1.json", "--body", str(body))
    put = json.loads(aws(*put_args, "--content-type", "application/json", "--metadata", "origin=cli"))
    head = json.loads(aws("s3api", "head-object", "--bucket", "cli-api", "--key", "a/1.json"))
    assert (head["ETag"], head["ContentType"], head["Metadata"]) == (put["ETag"], "application/json", {"origin": "cli"})
    aws("s3api", "get-object", "--bucket", "cli-api", "--key", "a/1.json", str(tmp_path / "out.json"))
    assert (tmp_path / "out.json").read_text() == '{"n": 1}'
    aws("s3api", "copy-object", "--bucket", "cli-api", "--key", "b/2.json", "--copy-source", "cli-api/a/1.json")
    listing = json.loads(aws("s3api", "list-objects-v2", "--bucket", "cli-api", "--delimiter", "/"))
    assert [prefix["Prefix"] for prefix in listing["CommonPrefixes"]] == ["a/", "b/"]
    assert "PreconditionFailed" in aws(*put_args, "--if-none-match", "*", ok=False)
    deleted = json.loads(
        aws(
            "s3api",
            "delete-objects",
            "--bucket",
            "cli-api",
            "--delete",
            '{"Objects": [{"Key": "a/1.json"}, {"Key": "b/2.json"}]}',
        )
    )
    assert sorted(item["Key"] for item in deleted["Deleted"]) == ["a/1.json", "b/2.json"]
    aws("s3api", "delete-bucket", "--bucket", "cli-api")
