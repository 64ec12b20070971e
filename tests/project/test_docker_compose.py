"""docker-compose.yml and the Dockerfile hold together (issue 23, item 15). There is no Docker engine here, so
the files are parsed: services, health checks, dependencies, ports and settings must agree with each other,
with the CLI (every command they run parses) and with docs/configuration.md."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from blobstore import Settings
from blobstore.cli import cli
from blobstore.server import create_app
from tests.support.live_server import free_port, serving_app

ROOT = Path(__file__).resolve().parents[2]
SECRET = "x" * 32


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    found: dict[str, Any] = compose["services"]
    return found


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, as (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def instruction(name: str) -> list[str]:
    return [arguments for found, arguments in dockerfile() if found == name]


def parses(args: list[str]) -> click.Context:
    """The click context of ``blobstore ARGS`` (parsed, not run); fails if a command or option does not exist."""
    command: click.Command = cli
    while isinstance(command, click.Group):
        command = command.commands[args[0]]
        args = args[1:]
    return command.make_context(command.name, list(args))


def host_ports(service: dict[str, Any]) -> dict[int, int]:
    """Published ports of ``service``: host port -> container port."""
    published = {}
    for mapping in service.get("ports", []):
        *_, host, container = str(mapping).split(":")
        published[int(host)] = int(container)
    return published


def test_postgresql_is_not_published_on_5432_and_no_host_port_is_taken_twice(services: dict[str, Any]) -> None:
    taken = [port for service in services.values() for port in host_ports(service)]
    assert 5432 not in taken
    assert len(taken) == len(set(taken)), taken


def test_the_blobstore_service_serves_both_apis_on_its_published_ports(services: dict[str, Any]) -> None:
    blobstore = services["blobstore"]
    serve = parses(blobstore["command"]).params
    assert serve["host"] == "0.0.0.0"
    assert serve["s3_port"] is not None
    assert set(host_ports(blobstore).values()) == {serve["port"], serve["s3_port"]}


def test_every_service_the_server_needs_is_healthy_or_done_before_it_starts(services: dict[str, Any]) -> None:
    blobstore = services["blobstore"]
    needs = blobstore["depends_on"]
    for name in ("postgres", "minio"):
        assert "healthcheck" in services[name]
        assert needs[name]["condition"] == "service_healthy"
    for name in ("create-bucket", "db-upgrade"):
        assert needs[name]["condition"] == "service_completed_successfully"
    assert services["db-upgrade"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert parses(services["db-upgrade"]["command"]).info_name == "upgrade"


def test_the_servers_health_check_passes_against_a_ready_server_only(services: dict[str, Any], tmp_path: Path) -> None:
    """The check's own command, pointed at a live server: exit 0 while /readyz answers 200, else not."""
    blobstore = services["blobstore"]
    kind, *command = blobstore["healthcheck"]["test"]
    assert kind == "CMD"
    assert command[0] == "python"
    url = f"http://127.0.0.1:{parses(blobstore['command']).params['port']}/readyz"
    assert url in command[-1]
    settings = Settings(home=tmp_path, database_url="sqlite+aiosqlite:///:memory:", storage_url="memory://")
    with serving_app(create_app(settings=settings)) as base:
        ready = subprocess.run(
            [sys.executable, *command[1:-1], command[-1].replace(url, f"{base}/readyz")], check=False
        )
    assert ready.returncode == 0
    down = command[-1].replace(url, f"http://127.0.0.1:{free_port()}/readyz")
    assert subprocess.run([sys.executable, *command[1:-1], down], capture_output=True, check=False).returncode != 0


def test_the_servers_settings_are_documented_and_name_the_other_services(services: dict[str, Any]) -> None:
    blobstore, postgres, minio = services["blobstore"], services["postgres"], services["minio"]
    assert services["db-upgrade"]["environment"] == blobstore["environment"]
    env = blobstore["environment"]
    documented = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in env:
        if name.startswith("BLOBSTORE_"):
            assert f"`{name}`" in documented, name
    assert env["BLOBSTORE_SECRET_KEY"].startswith("${BLOBSTORE_SECRET_KEY:?")  # compose refuses to start without it

    settings = Settings.from_env({**env, "BLOBSTORE_SECRET_KEY": SECRET})
    database = urlsplit(settings.database_url)
    pg = postgres["environment"]
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.password, database.path) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        f"/{pg['POSTGRES_DB']}",
    )
    endpoint = urlsplit(settings.s3_endpoint_url or "")
    assert endpoint.hostname == "minio"
    assert endpoint.port in host_ports(minio).values()
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["environment"]["MINIO_ROOT_USER"],
        minio["environment"]["MINIO_ROOT_PASSWORD"],
    )
    bucket = urlsplit(settings.storage_url).hostname
    assert f"local/{bucket}" in services["create-bucket"]["entrypoint"]


def test_the_image_installs_the_package_and_runs_the_same_server(services: dict[str, Any]) -> None:
    assert services["blobstore"]["build"] == "."
    for copied in instruction("COPY"):
        *sources, _destination = shlex.split(copied)
        for source in sources:
            assert (ROOT / source).exists(), source
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    [entrypoint] = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["blobstore"]
    assert "blobstore" in scripts
    [cmd] = instruction("CMD")
    assert json.loads(cmd) == services["blobstore"]["command"]
    serve = parses(json.loads(cmd)).params
    [exposed] = instruction("EXPOSE")
    assert {int(port) for port in exposed.split()} == {serve["port"], serve["s3_port"]}


def test_the_documented_token_step_is_a_real_command() -> None:
    guide = (ROOT / "docs" / "docker-compose.md").read_text(encoding="utf-8")
    steps = re.findall(r"^ *docker compose exec blobstore blobstore (.+)$", guide, flags=re.MULTILINE)
    assert any(step.startswith("token create ") for step in steps), steps
    for step in steps:
        parses(shlex.split(step.split("#")[0]))
