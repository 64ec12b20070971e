"""Configuration: environment -> Settings, failures at start in one clear sentence, and store identity pairing."""

from __future__ import annotations

import socket
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from blobstore import BlobStore, ConfigurationError, Settings
from blobstore.core.config import normalize_database_url
from blobstore.core.identity import MARKER_KEY
from blobstore.storage import read_all
from tests.support.s3_server import S3Endpoint
from tests.support.stores import StoreFactory
from tests.support.workers import rows

# --- Settings.from_env -----------------------------------------------------------------------------


def test_defaults_put_everything_under_blobstore_home(tmp_path: Path) -> None:
    """With only BLOBSTORE_HOME set: a SQLite file and a blobs/ directory in it, global dedup, 1 h grace."""
    settings = Settings.from_env({"BLOBSTORE_HOME": str(tmp_path / "home")})
    home = (tmp_path / "home").absolute()
    assert settings.home == home
    assert settings.database_url == f"sqlite+aiosqlite:///{home / 'blobstore.db'}"
    assert settings.storage_url == (home / "blobs").as_uri()
    assert settings.is_sqlite
    assert (settings.s3_endpoint_url, settings.s3_region) == (None, "us-east-1")
    assert (settings.dedup_scope, settings.gc_grace_seconds) == ("global", 3600.0)


def test_without_any_variable_home_is_dot_blobstore_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an empty environment the home is ./.blobstore, made absolute."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / ".blobstore"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / '.blobstore' / 'blobstore.db'}"
    assert settings.storage_url == (tmp_path / ".blobstore" / "blobs").as_uri()


def test_a_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative BLOBSTORE_HOME resolves against the working directory once, at start."""
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"BLOBSTORE_HOME": "data/bs"}).home == tmp_path / "data" / "bs"


def test_every_variable_overrides_its_default(tmp_path: Path) -> None:
    """Each BLOBSTORE_* variable sets its setting."""
    settings = Settings.from_env(
        {
            "BLOBSTORE_HOME": str(tmp_path),
            "BLOBSTORE_DATABASE_URL": "postgresql+asyncpg://u:p@db.example:5433/blobs",
            "BLOBSTORE_STORAGE_URL": "s3://bucket/prefix",
            "BLOBSTORE_S3_ENDPOINT_URL": "http://minio:9000",
            "BLOBSTORE_S3_REGION": "eu-west-1",
            "BLOBSTORE_DEDUP_SCOPE": "tenant",
            "BLOBSTORE_GC_GRACE": "0.5",
            "BLOBSTORE_COMPRESSION": "off",
            "BLOBSTORE_COMPRESSION_LEVEL": "19",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://u:p@db.example:5433/blobs"
    assert not settings.is_sqlite
    assert settings.storage_url == "s3://bucket/prefix"
    assert (settings.s3_endpoint_url, settings.s3_region) == ("http://minio:9000", "eu-west-1")
    assert (settings.dedup_scope, settings.gc_grace_seconds) == ("tenant", 0.5)
    assert (settings.compression, settings.compression_level, settings.frame_level) == ("off", 19, None)


def test_explicit_urls_win_over_the_environment(tmp_path: Path) -> None:
    """The CLI's --db and --storage (explicit arguments) override BLOBSTORE_DATABASE_URL and BLOBSTORE_STORAGE_URL."""
    env = {"BLOBSTORE_DATABASE_URL": "postgresql://env/db", "BLOBSTORE_STORAGE_URL": "memory://"}
    settings = Settings.from_env(env, database_url="sqlite:///x.db", storage_url=tmp_path.as_uri())
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.storage_url == tmp_path.as_uri()


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    """An empty variable (VAR=) falls back to the default instead of failing."""
    settings = Settings.from_env(
        {
            "BLOBSTORE_HOME": str(tmp_path),
            "BLOBSTORE_DATABASE_URL": "",
            "BLOBSTORE_DEDUP_SCOPE": "",
            "BLOBSTORE_GC_GRACE": "",
            "BLOBSTORE_S3_ENDPOINT_URL": "",
        }
    )
    assert settings.is_sqlite
    assert (settings.dedup_scope, settings.gc_grace_seconds, settings.s3_endpoint_url) == ("global", 3600.0, None)


def test_compression_is_zstd_level_3_where_it_pays_by_default() -> None:
    """Unset (or empty), BLOBSTORE_COMPRESSION is auto and BLOBSTORE_COMPRESSION_LEVEL 3."""
    settings = Settings.from_env({"BLOBSTORE_COMPRESSION": "", "BLOBSTORE_COMPRESSION_LEVEL": ""})
    assert (settings.compression, settings.compression_level, settings.frame_level) == ("auto", 3, 3)
    assert Settings.from_env({"BLOBSTORE_COMPRESSION_LEVEL": "1"}).frame_level == 1


@pytest.mark.parametrize("value", ["on", "zstd", "AUTO", "none", " off"])
def test_a_bad_compression_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="BLOBSTORE_COMPRESSION must be 'auto' or 'off'"):
        Settings.from_env({"BLOBSTORE_COMPRESSION": value})


@pytest.mark.parametrize("value", ["0", "20", "-1", "3.5", "three", "٣", "003", " 3"])
def test_a_bad_compression_level_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="BLOBSTORE_COMPRESSION_LEVEL must be a whole number from 1 to 19"):
        Settings.from_env({"BLOBSTORE_COMPRESSION_LEVEL": value})


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_database_urls_get_their_async_driver(url: str, normalised: str) -> None:
    """postgresql:// and sqlite:// URLs are normalised to the asyncpg and aiosqlite drivers."""
    assert normalize_database_url(url) == normalised
    assert Settings.from_env({"BLOBSTORE_DATABASE_URL": url}).database_url == normalised


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "sqlite+pysqlite:///x", "not a url", "/abs/path.db", ""]
)
def test_unsupported_database_urls_name_the_variable(url: str) -> None:
    """An unsupported database URL raises ConfigurationError naming BLOBSTORE_DATABASE_URL."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_DATABASE_URL"):
        normalize_database_url(url)


def test_a_bad_database_url_in_the_environment_names_the_variable() -> None:
    """A bad BLOBSTORE_DATABASE_URL fails Settings.from_env with ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_DATABASE_URL"):
        Settings.from_env({"BLOBSTORE_DATABASE_URL": "oracle://x"})


def test_a_rejected_database_url_does_not_echo_its_password() -> None:
    """The error for an unsupported database URL does not print the password it contains."""
    with pytest.raises(ConfigurationError) as caught:
        normalize_database_url("mysql://user:hunter2@db.example/blobs")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("scope", ["Global", "none", "tenants", "per-tenant", " global"])
def test_a_bad_dedup_scope_names_the_variable(scope: str) -> None:
    """A BLOBSTORE_DEDUP_SCOPE other than global/tenant raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_DEDUP_SCOPE"):
        Settings.from_env({"BLOBSTORE_DEDUP_SCOPE": scope})


@pytest.mark.parametrize("grace", ["-1", "soon", "nan", "1h", "-0.001"])
def test_a_bad_gc_grace_names_the_variable(grace: str) -> None:
    """A BLOBSTORE_GC_GRACE that is not a number of seconds >= 0 raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_GC_GRACE"):
        Settings.from_env({"BLOBSTORE_GC_GRACE": grace})


@pytest.mark.parametrize(("grace", "seconds"), [("0", 0.0), ("90", 90.0), ("1.5", 1.5), ("1e3", 1000.0)])
def test_gc_grace_accepts_seconds(grace: str, seconds: float) -> None:
    """BLOBSTORE_GC_GRACE accepts any number of seconds >= 0."""
    assert Settings.from_env({"BLOBSTORE_GC_GRACE": grace}).gc_grace_seconds == seconds


@pytest.mark.parametrize(("expiry", "seconds"), [("7d", 604800.0), ("36h", 129600.0), ("90m", 5400.0), ("600", 600.0)])
def test_multipart_expiry_accepts_a_duration(expiry: str, seconds: float) -> None:
    """BLOBSTORE_MULTIPART_EXPIRY is seconds, or a number with a unit of s, m, h or d; unset, 7 days."""
    assert Settings.from_env({"BLOBSTORE_MULTIPART_EXPIRY": expiry}).multipart_expiry_seconds == seconds
    assert Settings.from_env({}).multipart_expiry_seconds == 7 * 86400


@pytest.mark.parametrize("expiry", ["0", "-1d", "soon", "nan", "7y", "d", "inf", "4000d"])
def test_a_bad_multipart_expiry_names_the_variable(expiry: str) -> None:
    """A BLOBSTORE_MULTIPART_EXPIRY that is no duration above 0 and up to ten years raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="BLOBSTORE_MULTIPART_EXPIRY"):
        Settings.from_env({"BLOBSTORE_MULTIPART_EXPIRY": expiry})


# --- BlobStore.open failures -----------------------------------------------------------------------


def _one_sentence(error: ConfigurationError, variable: str) -> None:
    message = str(error)
    assert variable in message, message
    assert "\n" not in message, message
    assert "Traceback" not in message, message


def _sqlite(tmp_path: Path, storage_url: str) -> Settings:
    return Settings(
        home=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'blobstore.db'}", storage_url=storage_url
    )


@pytest.mark.parametrize("url", ["ftp://host/x", "gs://bucket", "file://relative/dir", "memory://x", "s3://"])
async def test_an_unusable_storage_url_fails_at_open(tmp_path: Path, url: str) -> None:
    """BlobStore.open with an unknown scheme or malformed storage URL raises ConfigurationError naming the variable."""
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(_sqlite(tmp_path, url))
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")


async def test_an_unwritable_storage_directory_fails_at_open(tmp_path: Path) -> None:
    """A storage directory that cannot be created raises ConfigurationError naming BLOBSTORE_STORAGE_URL."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(_sqlite(tmp_path, (blocker / "blobs").as_uri()))
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:1/x",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/blobstore_no_such_database",
    ],
)
async def test_an_unreachable_database_fails_at_open(tmp_path: Path, url: str) -> None:
    """A database that refuses connections or does not exist raises ConfigurationError naming the variable."""
    settings = replace(_sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url=url)
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")
    assert "cannot connect" in str(caught.value)


async def test_an_uncreatable_sqlite_directory_fails_at_open(tmp_path: Path) -> None:
    """A SQLite file whose directory cannot be created raises ConfigurationError naming the variable."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    settings = replace(
        _sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url=f"sqlite+aiosqlite:///{blocker}/sub/x.db"
    )
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")


async def test_a_missing_bucket_fails_at_open(tmp_path: Path, s3: S3Endpoint) -> None:
    """An S3 bucket that does not exist raises ConfigurationError saying so and naming BLOBSTORE_STORAGE_URL."""
    bucket = f"blobstore-missing-{uuid.uuid4().hex[:12]}"
    settings = replace(_sqlite(tmp_path, f"s3://{bucket}/p"), s3_endpoint_url=s3.url)
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")
    assert bucket in str(caught.value)


async def test_an_unreachable_s3_endpoint_fails_at_open(tmp_path: Path, s3: S3Endpoint) -> None:
    """An S3 endpoint nobody listens on raises ConfigurationError naming BLOBSTORE_S3_ENDPOINT_URL."""
    settings = replace(_sqlite(tmp_path, "s3://bucket"), s3_endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_S3_ENDPOINT_URL")


async def test_an_unmigrated_server_database_asks_for_an_upgrade(tmp_path: Path, empty_postgres_url: str) -> None:
    """A PostgreSQL database without the schema fails at open, telling to run `blobstore db upgrade`."""
    settings = replace(_sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url=empty_postgres_url)
    with pytest.raises(ConfigurationError, match="blobstore db upgrade") as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")
    async with await BlobStore.open(settings, migrate_schema=True) as store:
        await store.tenant("acme").put("k", b"works once migrated")


async def test_the_embedded_database_migrates_itself(tmp_path: Path) -> None:
    """Opening the embedded SQLite default on an empty home creates the database, the schema and the storage."""
    settings = Settings.from_env({"BLOBSTORE_HOME": str(tmp_path / "home")})
    async with await BlobStore.open(settings) as store:
        await store.tenant("acme").put("k", b"v")
    assert (tmp_path / "home" / "blobstore.db").is_file()
    assert (tmp_path / "home" / "blobs" / MARKER_KEY).is_file()
    async with await BlobStore.open(settings) as store:
        assert await store.tenant("acme").get("k") == b"v"


# --- store identity --------------------------------------------------------------------------------


async def _open(tmp_path: Path, db: str, blobs: str) -> BlobStore:
    return await BlobStore.open(
        Settings(
            home=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / db / 'blobstore.db'}",
            storage_url=(tmp_path / blobs).as_uri(),
        )
    )


async def test_a_store_reopens_with_its_own_id(tmp_path: Path) -> None:
    """Reopening a database with its own storage works and keeps one store id on both sides."""
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        await store.tenant("acme").put("k", b"v")
        first = await rows(store, "SELECT value FROM store_meta WHERE name = 'store_id'")
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        assert await rows(store, "SELECT value FROM store_meta WHERE name = 'store_id'") == first
        assert (await read_all(store.storage, MARKER_KEY)).decode() == first[0][0]
        assert await store.tenant("acme").get("k") == b"v"


async def test_a_database_and_a_storage_of_different_stores_refuse_to_pair(tmp_path: Path) -> None:
    """Opening store A's database with store B's storage raises ConfigurationError and changes neither."""
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        await store.tenant("acme").put("k", b"a")
    async with await _open(tmp_path, "db-b", "blobs-b") as store:
        await store.tenant("acme").put("k", b"b")
    marker_b = (tmp_path / "blobs-b" / MARKER_KEY).read_bytes()
    with pytest.raises(ConfigurationError, match="belongs to") as caught:
        await _open(tmp_path, "db-a", "blobs-b")
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")
    assert (tmp_path / "blobs-b" / MARKER_KEY).read_bytes() == marker_b
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        assert await store.tenant("acme").get("k") == b"a"


async def test_a_fresh_database_refuses_storage_of_an_existing_store(tmp_path: Path) -> None:
    """An empty database pointed at storage that already holds a store marker raises ConfigurationError."""
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        await store.tenant("acme").put("k", b"a")
    objects_before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "blobs-a").rglob("*") if p.is_file())
    with pytest.raises(ConfigurationError, match="database is empty") as caught:
        await _open(tmp_path, "db-new", "blobs-a")
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")
    objects_after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "blobs-a").rglob("*") if p.is_file())
    assert objects_after == objects_before


async def test_a_database_with_blobs_refuses_empty_storage(tmp_path: Path) -> None:
    """A database that references objects, pointed at an empty directory without a marker, raises
    ConfigurationError (a directory that does not exist is named as such: tests/cli/test_cli_first_hour.py)."""
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        await store.tenant("acme").put("k", b"a")
    (tmp_path / "blobs-empty").mkdir()
    with pytest.raises(ConfigurationError, match="no blobstore marker") as caught:
        await _open(tmp_path, "db-a", "blobs-empty")
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")
    assert not (tmp_path / "blobs-empty" / MARKER_KEY).exists()


async def test_a_database_without_blobs_adopts_new_empty_storage(tmp_path: Path) -> None:
    """A database that references nothing may move to new, empty storage, which gets the same store id."""
    async with await _open(tmp_path, "db-a", "blobs-a") as store:
        await store.tenant("acme").list()
        store_id = (await read_all(store.storage, MARKER_KEY)).decode()
    async with await _open(tmp_path, "db-a", "blobs-new") as store:
        assert (await read_all(store.storage, MARKER_KEY)).decode() == store_id


@pytest.mark.postgres
async def test_pairing_holds_on_postgres_and_s3(open_store: StoreFactory, tmp_path: Path) -> None:
    """A PostgreSQL database paired with one S3 prefix refuses an S3 prefix that another store owns."""
    store = await open_store("postgres-s3")
    await store.tenant("acme").put("k", b"v")
    other_prefix = store.settings.storage_url + "-other"
    other = replace(_sqlite(tmp_path, other_prefix), s3_endpoint_url=store.settings.s3_endpoint_url)
    async with await BlobStore.open(other) as other_store:
        other_id = (await read_all(other_store.storage, MARKER_KEY)).decode()
    with pytest.raises(ConfigurationError, match="belongs to") as caught:
        await BlobStore.open(replace(store.settings, storage_url=other_prefix))
    assert other_id in str(caught.value)
    assert await store.tenant("acme").get("k") == b"v"


# --- settings that used to fail late or strangely (issue 8, item 9; item 7) -------------------------


@pytest.mark.parametrize("grace", ["inf", "1e12", "-5", "1e400", "infinity"])
def test_an_unrepresentable_gc_grace_is_refused_at_start(grace: str) -> None:
    """A grace that is infinite, negative or past any date the databases hold names the variable at start."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"BLOBSTORE_GC_GRACE": grace})
    _one_sentence(caught.value, "BLOBSTORE_GC_GRACE")


@pytest.mark.parametrize(
    "url", ["postgresql+asyncpg://postgres@127.0.0.1:port/x", "postgresql://postgres@127.0.0.1:99999/x"]
)
def test_a_bad_database_port_names_the_variable(url: str) -> None:
    """A non-numeric or out-of-range port is refused when the settings are read."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"BLOBSTORE_DATABASE_URL": url})
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
async def test_libpq_sslmode_is_understood(tmp_path: Path, empty_postgres_url: str, mode: str) -> None:
    """``?sslmode=`` as libpq spells it reaches asyncpg as its ``ssl`` option; the store opens and works."""
    url = make_url(empty_postgres_url).update_query_dict({"sslmode": mode}).render_as_string(hide_password=False)
    settings = replace(_sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url=url)
    store = await BlobStore.open(settings, migrate_schema=True)
    async with store:
        assert (await store.tenant("acme").put("k", b"over ssl settings")).size == 17


@pytest.mark.postgres
async def test_sslmode_require_against_a_server_without_ssl_is_one_sentence(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    """sslmode=require is passed on (not ignored): a server without SSL refuses, in one sentence."""
    url = make_url(empty_postgres_url).update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(replace(_sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url=url))
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")


def test_an_unknown_sslmode_names_the_variable() -> None:
    """An sslmode libpq does not know is refused when the settings are read."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"BLOBSTORE_DATABASE_URL": "postgresql://h/db?sslmode=sometimes"})
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")


async def test_memory_storage_beside_a_persistent_database_is_refused(tmp_path: Path) -> None:
    """memory:// with a database file would acknowledge puts whose bytes vanish with the process."""
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(_sqlite(tmp_path, "memory://"))
    _one_sentence(caught.value, "BLOBSTORE_STORAGE_URL")
    assert not (tmp_path / "db" / "blobstore.db").exists()


async def test_an_in_memory_database_beside_persistent_storage_is_refused(tmp_path: Path) -> None:
    """:memory: with a directory would leave objects that no database remembers."""
    settings = replace(_sqlite(tmp_path, (tmp_path / "blobs").as_uri()), database_url="sqlite+aiosqlite:///:memory:")
    with pytest.raises(ConfigurationError) as caught:
        await BlobStore.open(settings)
    _one_sentence(caught.value, "BLOBSTORE_DATABASE_URL")


async def test_an_in_memory_database_with_memory_storage_is_a_working_scratch_store(tmp_path: Path) -> None:
    """Both sides in memory make a consistent throw-away store: puts, dedup, reads, deletes and GC work."""
    settings = replace(_sqlite(tmp_path, "memory://"), database_url="sqlite+aiosqlite:///:memory:")
    async with await BlobStore.open(settings) as store:
        acme = store.tenant("acme")
        await acme.put("a", b"scratch")
        assert (await acme.put("b", b"scratch")).deduplicated
        assert await acme.get("a") == b"scratch"
        assert await acme.delete("a")
        assert [item.key for item in await acme.list()] == ["b"]


def test_the_spool_is_off_unless_both_variables_are_set(tmp_path: Path) -> None:
    assert Settings.from_env({}).spool_dir is None
    settings = Settings.from_env({"BLOBSTORE_SPOOL_DIR": str(tmp_path), "BLOBSTORE_SPOOL_MAX_BYTES": "1000"})
    assert (settings.spool_dir, settings.spool_max_bytes) == (tmp_path, 1000)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BLOBSTORE_SPOOL_DIR": "/spool"}, "BLOBSTORE_SPOOL_MAX_BYTES is not set"),
        ({"BLOBSTORE_SPOOL_MAX_BYTES": "10"}, "BLOBSTORE_SPOOL_DIR is not set"),
        ({"BLOBSTORE_SPOOL_DIR": "/spool", "BLOBSTORE_SPOOL_MAX_BYTES": "0"}, "BLOBSTORE_SPOOL_MAX_BYTES must be"),
        ({"BLOBSTORE_SPOOL_DIR": "/spool", "BLOBSTORE_SPOOL_MAX_BYTES": "1G"}, "BLOBSTORE_SPOOL_MAX_BYTES must be"),
        ({"BLOBSTORE_NODE_ID": "x" * 65}, "BLOBSTORE_NODE_ID must be at most 64"),
        ({"BLOBSTORE_NODE_ID": " a"}, "BLOBSTORE_NODE_ID must be"),
    ],
)
def test_bad_spool_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(environ)


def test_the_node_id_defaults_to_the_host_name() -> None:
    assert Settings.from_env({}).node_id == socket.gethostname()
    assert Settings.from_env({"BLOBSTORE_NODE_ID": "node-a"}).node_id == "node-a"
