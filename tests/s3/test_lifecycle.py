"""Bucket lifecycle through the S3 API, driven by boto3 against the real app, on SQLite and PostgreSQL: a
configuration is the tenant's lifecycle rules under ``<bucket>/``, read back as written; what is not carried out
is 501 and changes nothing; expiry and aborts then happen by the store's clock."""

from __future__ import annotations

from typing import Any

import pytest

from blobstore import BlobStore
from blobstore.model.lifecycle import Rule
from tests.s3.test_multipart import begin, client, error_of
from tests.support.stores import FakeClock

DAY = 86400
CONFIGURATION = {
    "Rules": [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 7}},
        {
            "ID": "uploads",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
        },
    ]
}


def configured(s3: Any, bucket: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return rules


async def test_a_configuration_is_the_buckets_rules_and_reads_back(store: BlobStore, url: str) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="photos")
    await store.set_lifecycle_rule("acme", "elsewhere/", expire_after=DAY)

    s3.put_bucket_lifecycle_configuration(Bucket="photos", LifecycleConfiguration=CONFIGURATION)

    assert await store.lifecycle_rules("acme") == [
        Rule("acme", "elsewhere/", DAY),
        Rule("acme", "photos/", None, 2 * DAY),
        Rule("acme", "photos/tmp/", 7 * DAY),
    ]
    assert configured(s3, "photos") == [
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
        {"Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 7}},
    ]
    legacy = {"Rules": [{"Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 30}}]}
    s3.put_bucket_lifecycle_configuration(Bucket="photos", LifecycleConfiguration=legacy)
    assert configured(s3, "photos") == [
        {"Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}}
    ]

    s3.delete_bucket_lifecycle(Bucket="photos")
    assert error_of(s3.get_bucket_lifecycle_configuration, Bucket="photos") == ("NoSuchLifecycleConfiguration", 404)
    assert await store.lifecycle_rules("acme") == [Rule("acme", "elsewhere/", DAY)]


async def test_deleting_the_bucket_deletes_its_configuration(store: BlobStore, url: str) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="short-lived")
    s3.put_bucket_lifecycle_configuration(Bucket="short-lived", LifecycleConfiguration=CONFIGURATION)
    s3.delete_bucket(Bucket="short-lived")
    s3.create_bucket(Bucket="short-lived")
    assert error_of(s3.get_bucket_lifecycle_configuration, Bucket="short-lived") == (
        "NoSuchLifecycleConfiguration",
        404,
    )
    assert await store.lifecycle_rules() == []


async def test_another_tenants_bucket_is_not_there(store: BlobStore, url: str) -> None:
    acme, globex = await client(store, url), await client(store, url, "globex")
    acme.create_bucket(Bucket="private")
    code = error_of(globex.put_bucket_lifecycle_configuration, Bucket="private", LifecycleConfiguration=CONFIGURATION)
    assert code == ("NoSuchBucket", 404)
    assert await store.lifecycle_rules() == []


@pytest.mark.parametrize(
    "rule",
    [
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "Transitions": [{"Days": 3, "StorageClass": "DEEP_ARCHIVE"}]},
        {
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 90, "StorageClass": "GLACIER_IR"}],
        },
        {
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "Transitions": [{"Date": "2030-01-01T00:00:00Z", "StorageClass": "STANDARD_IA"}],
        },
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 3}},
        {"Filter": {"Tag": {"Key": "a", "Value": "b"}}, "Status": "Enabled", "Expiration": {"Days": 1}},
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Date": "2030-01-01T00:00:00Z"}},
        {"Filter": {"Prefix": ""}, "Status": "Disabled", "Expiration": {"Days": 1}},
    ],
)
async def test_what_is_not_carried_out_is_501_and_changes_nothing(
    store: BlobStore, url: str, rule: dict[str, Any]
) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="bucket-one")
    s3.put_bucket_lifecycle_configuration(Bucket="bucket-one", LifecycleConfiguration=CONFIGURATION)
    before = await store.lifecycle_rules()

    configuration = {"Rules": [{"ID": "x", **rule}]}
    code = error_of(s3.put_bucket_lifecycle_configuration, Bucket="bucket-one", LifecycleConfiguration=configuration)

    assert code == ("NotImplemented", 501)
    assert await store.lifecycle_rules() == before


async def test_a_transition_is_the_rules_storage_class_and_reads_back(store: BlobStore, url: str) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="logs")
    rule = {
        "Filter": {"Prefix": "old/"},
        "Status": "Enabled",
        "Expiration": {"Days": 365},
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
    }
    s3.put_bucket_lifecycle_configuration(Bucket="logs", LifecycleConfiguration={"Rules": [rule]})

    assert await store.lifecycle_rules("acme") == [Rule("acme", "logs/old/", 365 * DAY, None, 30 * DAY, "STANDARD_IA")]
    assert configured(s3, "logs") == [rule]
    bad = {"Rules": [{**rule, "Transitions": [{"Days": 30, "StorageClass": "COLDEST"}]}]}
    assert error_of(s3.put_bucket_lifecycle_configuration, Bucket="logs", LifecycleConfiguration=bad) == (
        "InvalidStorageClass",
        400,
    )
    assert configured(s3, "logs") == [rule]


async def test_a_bad_configuration_is_refused_and_changes_nothing(store: BlobStore, url: str) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="bucket-two")
    zero = {"Rules": [{"Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 0}}]}
    assert error_of(s3.put_bucket_lifecycle_configuration, Bucket="bucket-two", LifecycleConfiguration=zero)[1] == 400
    twice = {"Rules": [{"Filter": {"Prefix": "a"}, "Status": "Enabled", "Expiration": {"Days": 1}}] * 2}
    assert error_of(s3.put_bucket_lifecycle_configuration, Bucket="bucket-two", LifecycleConfiguration=twice)[1] == 400
    assert await store.lifecycle_rules() == []


async def test_the_rules_expire_objects_and_abort_uploads_by_the_clock(
    store: BlobStore, url: str, clock: FakeClock
) -> None:
    s3 = await client(store, url)
    s3.create_bucket(Bucket="media")
    s3.put_bucket_lifecycle_configuration(Bucket="media", LifecycleConfiguration=CONFIGURATION)
    s3.put_object(Bucket="media", Key="tmp/a", Body=b"temporary")
    s3.put_object(Bucket="media", Key="kept", Body=b"kept")
    upload = begin(s3, "media", "big")
    s3.upload_part(**upload, PartNumber=1, Body=b"part")

    clock.advance(2 * DAY + 1)
    stats = await store.expire()
    assert (stats.keys, stats.tenants["acme"].uploads_aborted) == (0, 1)
    clock.advance(5 * DAY)
    stats = await store.expire()
    assert (stats.keys, stats.bytes) == (1, len(b"temporary"))
    assert [info.key for info in (await store.tenant("acme").list()).items] == ["media/kept"]
    assert (await store.quota("acme")).used_bytes == len(b"kept")
