"""Bucket lifecycle: PutBucketLifecycleConfiguration, GetBucketLifecycleConfiguration and DeleteBucketLifecycle
over the tenant's lifecycle rules (blobstore.maintenance.lifecycle, docs/lifecycle.md).

A bucket's configuration is the tenant's rules whose prefix starts with ``<bucket>/``: a rule of prefix ``P``
with ``Expiration.Days`` N is the rule ``<bucket>/P`` expiring keys N days after they were last written, and
``AbortIncompleteMultipartUpload.DaysAfterInitiation`` M aborts its multipart uploads untouched for M days, and
one ``Transition`` (``Days`` D, ``StorageClass`` C) moves its blobs to C once D days cold (docs/lifecycle.md).
Putting a configuration replaces all of them at once; what this API does not carry out is refused (501) before
anything changes. Rule IDs are not kept.
"""

from __future__ import annotations

import math

from starlette.responses import Response

from blobstore.buckets import key_of
from blobstore.maintenance import lifecycle
from blobstore.model.lifecycle import Rule
from blobstore.s3 import xml
from blobstore.s3.buckets import existing
from blobstore.s3.call import Call
from blobstore.s3.errors import S3Error

DAY = 86400


async def put_bucket_lifecycle_configuration(call: Call) -> Response:
    """PutBucketLifecycleConfiguration: the bucket's rules become exactly those of the document."""
    bucket = existing(call)
    parsed = xml.parse_lifecycle(await call.body.whole())
    wanted = [
        Rule(
            call.tenant.name,
            key_of(bucket, rule.prefix),
            None if rule.expiration_days is None else rule.expiration_days * DAY,
            None if rule.abort_days is None else rule.abort_days * DAY,
            None if rule.transition_days is None else rule.transition_days * DAY,
            rule.storage_class,
        )
        for rule in parsed
    ]
    await lifecycle.replace_rules(call.store.core, call.tenant.name, key_of(bucket, ""), wanted)
    return Response()


async def get_bucket_lifecycle_configuration(call: Call) -> Response:
    """GetBucketLifecycleConfiguration: the bucket's rules, in days (a rule set in seconds rounds up to whole
    days); NoSuchLifecycleConfiguration if it has none."""
    bucket = existing(call)
    under = key_of(bucket, "")
    found = await lifecycle.rules(call.store.core, call.tenant.name, under=under)
    if not found:
        raise S3Error("NoSuchLifecycleConfiguration", "the lifecycle configuration does not exist")
    rules = [
        xml.LifecycleRule(
            rule.prefix.removeprefix(under),
            _days(rule.expire_after),
            _days(rule.abort_multipart_after),
            _days(rule.transition_after),
            rule.storage_class,
        )
        for rule in found
    ]
    return Response(xml.lifecycle_configuration(rules), media_type=xml.CONTENT_TYPE)


async def delete_bucket_lifecycle(call: Call) -> Response:
    """DeleteBucketLifecycle: the bucket's rules go (204 whether it had any or not)."""
    bucket = existing(call)
    await lifecycle.replace_rules(call.store.core, call.tenant.name, key_of(bucket, ""), [])
    return Response(status_code=204)


def _days(seconds: int | None) -> int | None:
    return None if seconds is None else math.ceil(seconds / DAY)
