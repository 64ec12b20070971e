"""The S3 API's XML documents, written with ElementTree from typed arguments; names follow the S3 API reference."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from blobstore.model.checksums import ALGORITHMS
from blobstore.model.results import BlobInfo
from blobstore.model.transitions import COLD_CLASSES
from blobstore.s3.errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
CONTENT_TYPE = "application/xml"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _document(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _child(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as S3 writes ``CreationDate`` and ``LastModified``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    """An ``Error`` document; the characters of ``resource`` (the path, which may hold any byte a client sent)
    that XML 1.0 cannot carry are percent-encoded."""
    root = ET.Element("Error")
    resource = _XML_UNWRITABLE.sub(lambda found: quote(found.group()), resource)
    for name, text in (("Code", code), ("Message", message), ("Resource", resource), ("RequestId", request_id)):
        _child(root, name, text)
    return _document(root)


#: What XML 1.0 cannot hold: control characters but tab, newline and carriage return; surrogates; U+FFFE, U+FFFF.
_XML_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]


def parse_delete(body: bytes) -> tuple[list[tuple[str, str | None]], bool]:
    """The (Key, VersionId) of each ``Object`` of a DeleteObjects ``Delete`` document, and its ``Quiet``;
    S3Error MalformedXML for anything else."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("MalformedXML", "the XML you provided was not well-formed") from None
    if _local(root.tag) != "Delete":
        raise S3Error("MalformedXML", "a DeleteObjects body is a Delete element")
    objects: list[tuple[str, str | None]] = []
    quiet = False
    for element in root:
        fields = {_local(child.tag): child.text or "" for child in element}
        if _local(element.tag) == "Quiet":
            quiet = (element.text or "").strip().lower() == "true"
        elif _local(element.tag) == "Object" and "Key" in fields:
            objects.append((fields["Key"], fields.get("VersionId")))
        else:
            raise S3Error("MalformedXML", f"unexpected element {_local(element.tag)} in Delete")
    if not objects:
        raise S3Error("MalformedXML", "a Delete element names at least one Object")
    return objects, quiet


def delete_result(deleted: Sequence[str], errors: Sequence[tuple[str, str, str]]) -> bytes:
    """A ``DeleteResult``: the keys deleted, and (key, code, message) for each that could not be."""
    root = ET.Element("DeleteResult", xmlns=NAMESPACE)
    for key in deleted:
        _child(_child(root, "Deleted"), "Key", key)
    for key, code, message in errors:
        error = _child(root, "Error")
        for name, text in (("Key", key), ("Code", code), ("Message", message)):
            _child(error, name, text)
    return _document(root)


def list_buckets(
    owner: str,
    buckets: Sequence[tuple[str, datetime]],
    *,
    prefix: str | None = None,
    continuation_token: str | None = None,
) -> bytes:
    """A ``ListAllMyBucketsResult``: the owner (the tenant) and its buckets with their creation dates; the
    ``prefix`` asked for and the token of the next page, if any."""
    root = ET.Element("ListAllMyBucketsResult", xmlns=NAMESPACE)
    _person(_child(root, "Owner"), owner)
    listed = _child(root, "Buckets")
    for name, created in buckets:
        bucket = _child(listed, "Bucket")
        _child(bucket, "Name", name)
        _child(bucket, "CreationDate", timestamp(created))
    if prefix is not None:
        _child(root, "Prefix", prefix)
    if continuation_token is not None:
        _child(root, "ContinuationToken", continuation_token)
    return _document(root)


def location(region: str) -> bytes:
    """A ``LocationConstraint`` document: empty for us-east-1, as S3 answers."""
    root = ET.Element("LocationConstraint", xmlns=NAMESPACE)
    if region != "us-east-1":
        root.text = region
    return _document(root)


def copy_result(
    etag: str,
    modified: datetime,
    *,
    root_name: str = "CopyObjectResult",
    checksum: tuple[str, str] | None = None,
) -> bytes:
    """A ``CopyObjectResult`` (UploadPartCopy: ``root_name`` ``CopyPartResult``): the ETag and LastModified of
    what was written, and its (algorithm, value) ``checksum`` if it has one."""
    root = ET.Element(root_name, xmlns=NAMESPACE)
    _child(root, "ETag", etag)
    _child(root, "LastModified", timestamp(modified))
    if checksum is not None:
        _child(root, checksum_element(checksum[0]), checksum[1])
    return _document(root)


def versioning() -> bytes:
    """A ``VersioningConfiguration`` of a bucket whose versioning was never enabled: empty."""
    return _document(ET.Element("VersioningConfiguration", xmlns=NAMESPACE))


def private_acl(owner: str) -> bytes:
    """An ``AccessControlPolicy`` granting the owner (the tenant) FULL_CONTROL and nobody anything else."""
    root = ET.Element("AccessControlPolicy", xmlns=NAMESPACE)
    _person(_child(root, "Owner"), owner)
    grant = _child(_child(root, "AccessControlList"), "Grant")
    _person(ET.SubElement(grant, "Grantee", {"xmlns:xsi": _XSI, "xsi:type": "CanonicalUser"}), owner)
    _child(grant, "Permission", "FULL_CONTROL")
    return _document(root)


def _person(parent: ET.Element, owner: str) -> None:
    _child(parent, "ID", owner)
    _child(parent, "DisplayName", owner)


@dataclass(frozen=True)
class Listing:
    """One page of a bucket listing, as both ListObjects versions show it; ``objects`` are (key in the bucket,
    info, ETag). With ``url_encoded`` (``encoding-type=url``) every key, prefix and marker is percent-encoded."""

    bucket: str
    prefix: str
    delimiter: str | None
    max_keys: int
    objects: Sequence[tuple[str, BlobInfo, str]]
    common_prefixes: Sequence[str]
    truncated: bool
    url_encoded: bool
    #: The owner each object is listed with (the tenant), or None to list none.
    owner: str | None = None

    def name(self, text: str) -> str:
        return quote(text, safe="/") if self.url_encoded else text


def list_objects_v2(
    listing: Listing, *, continuation_token: str | None, next_token: str | None, start_after: str | None
) -> bytes:
    """A ``ListBucketResult`` of ListObjectsV2."""
    fields = [
        ("KeyCount", str(len(listing.objects) + len(listing.common_prefixes))),
        ("ContinuationToken", continuation_token),
        ("NextContinuationToken", next_token),
        ("StartAfter", None if start_after is None else listing.name(start_after)),
    ]
    return _listing_document(listing, fields)


def list_objects_v1(listing: Listing, *, marker: str, next_marker: str | None) -> bytes:
    """A ``ListBucketResult`` of ListObjects (v1)."""
    fields = [
        ("Marker", listing.name(marker)),
        ("NextMarker", None if next_marker is None else listing.name(next_marker)),
    ]
    return _listing_document(listing, fields)


def list_object_versions(listing: Listing, *, key_marker: str, next_key_marker: str | None) -> bytes:
    """A ``ListVersionsResult`` of a bucket without versioning: every object as its one version, ``null``."""
    fields = [
        ("KeyMarker", listing.name(key_marker)),
        ("VersionIdMarker", ""),
        ("NextKeyMarker", None if next_key_marker is None else listing.name(next_key_marker)),
        ("NextVersionIdMarker", None if next_key_marker is None else "null"),
    ]
    return _listing_document(listing, fields, root_name="ListVersionsResult", entry="Version")


def _listing_document(
    listing: Listing,
    fields: Sequence[tuple[str, str | None]],
    *,
    root_name: str = "ListBucketResult",
    entry: str = "Contents",
) -> bytes:
    """The listing document; each object an ``entry`` element (``Version`` ones also say ``null`` and latest)."""
    root = ET.Element(root_name, xmlns=NAMESPACE)
    _child(root, "Name", listing.bucket)
    _child(root, "Prefix", listing.name(listing.prefix))
    if listing.delimiter is not None:
        _child(root, "Delimiter", listing.name(listing.delimiter))
    if listing.url_encoded:
        _child(root, "EncodingType", "url")
    _child(root, "MaxKeys", str(listing.max_keys))
    _child(root, "IsTruncated", "true" if listing.truncated else "false")
    for field, text in fields:
        if text is not None:
            _child(root, field, text)
    for key, info, etag in listing.objects:
        content = _child(root, entry)
        _child(content, "Key", listing.name(key))
        if entry == "Version":
            _child(content, "VersionId", "null")
            _child(content, "IsLatest", "true")
        _child(content, "LastModified", timestamp(info.created_at))
        _child(content, "ETag", etag)
        _child(content, "Size", str(info.size))
        _child(content, "StorageClass", "STANDARD")
        if listing.owner is not None:
            _person(_child(content, "Owner"), listing.owner)
    for common in listing.common_prefixes:
        _child(_child(root, "CommonPrefixes"), "Prefix", listing.name(common))
    return _document(root)


def initiate_multipart_upload(bucket: str, key: str, upload_id: str) -> bytes:
    """An ``InitiateMultipartUploadResult``: the upload's bucket, key and id."""
    root = ET.Element("InitiateMultipartUploadResult", xmlns=NAMESPACE)
    for name, text in (("Bucket", bucket), ("Key", key), ("UploadId", upload_id)):
        _child(root, name, text)
    return _document(root)


@dataclass(frozen=True)
class Completion:
    """A ``CompleteMultipartUpload`` document: (PartNumber, ETag) of each ``Part``, in document order, and the
    (algorithm, base64 value) of the ``Checksum<ALGORITHM>`` a part names, by part number."""

    parts: list[tuple[int, str]]
    checksums: dict[int, tuple[str, str]]


def checksum_element(algorithm: str) -> str:
    """The element (and boto3 field) of the checksum ``algorithm``: ``ChecksumCRC32`` for ``crc32``."""
    return "Checksum" + algorithm.upper()


#: The algorithm of each checksum element (``ChecksumCRC32``: ``crc32``).
_CHECKSUM_ELEMENTS = {checksum_element(algorithm): algorithm for algorithm in ALGORITHMS}


def parse_complete_multipart_upload(body: bytes) -> Completion:
    """The parts of a ``CompleteMultipartUpload`` document and the checksums they name; S3Error MalformedXML for
    anything else (a part naming several checksums too)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("MalformedXML", "the XML you provided was not well-formed") from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML", "a CompleteMultipartUpload body is a CompleteMultipartUpload element")
    completion = Completion([], {})
    for element in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        number = fields.get("PartNumber", "")
        if _local(element.tag) != "Part" or not number.isascii() or not number.isdigit() or "ETag" not in fields:
            raise S3Error("MalformedXML", "each Part names its PartNumber and ETag")
        completion.parts.append((int(number), fields["ETag"]))
        named = [(algorithm, fields[name]) for name, algorithm in _CHECKSUM_ELEMENTS.items() if name in fields]
        if len(named) > 1:
            raise S3Error("MalformedXML", "a Part names at most one checksum")
        if named:
            completion.checksums[int(number)] = named[0]
    if not completion.parts:
        raise S3Error("MalformedXML", "a CompleteMultipartUpload element names at least one Part")
    return completion


def complete_multipart_upload(
    location: str, bucket: str, key: str, etag: str, checksum: tuple[str, str] | None = None
) -> bytes:
    """A ``CompleteMultipartUploadResult``: where the object is, its ETag, and its COMPOSITE ``checksum``
    (algorithm, value) if it has one."""
    root = ET.Element("CompleteMultipartUploadResult", xmlns=NAMESPACE)
    for name, text in (("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", etag)):
        _child(root, name, text)
    if checksum is not None:
        _child(root, checksum_element(checksum[0]), checksum[1])
        _child(root, "ChecksumType", "COMPOSITE")
    return _document(root)


@dataclass(frozen=True)
class PartsPage:
    """One page of ListParts: the upload, and (PartNumber, LastModified, ETag, Size, checksum) of each part (the
    base64 checksum of the upload's ``checksum_algorithm``, if it has one)."""

    bucket: str
    key: str
    upload_id: str
    owner: str
    marker: int
    max_parts: int
    parts: Sequence[tuple[int, datetime, str, int, str | None]]
    truncated: bool
    checksum_algorithm: str | None = None


def list_parts(page: PartsPage) -> bytes:
    """A ``ListPartsResult``."""
    root = ET.Element("ListPartsResult", xmlns=NAMESPACE)
    for name, text in (("Bucket", page.bucket), ("Key", page.key), ("UploadId", page.upload_id)):
        _child(root, name, text)
    _person(_child(root, "Initiator"), page.owner)
    _person(_child(root, "Owner"), page.owner)
    _child(root, "StorageClass", "STANDARD")
    _child(root, "PartNumberMarker", str(page.marker))
    if page.parts:
        _child(root, "NextPartNumberMarker", str(page.parts[-1][0]))
    _child(root, "MaxParts", str(page.max_parts))
    _child(root, "IsTruncated", "true" if page.truncated else "false")
    if page.checksum_algorithm is not None:
        _child(root, "ChecksumAlgorithm", page.checksum_algorithm.upper())
        _child(root, "ChecksumType", "COMPOSITE")
    for number, modified, etag, size, checksum in page.parts:
        part = _child(root, "Part")
        _child(part, "PartNumber", str(number))
        _child(part, "LastModified", timestamp(modified))
        _child(part, "ETag", etag)
        _child(part, "Size", str(size))
        if page.checksum_algorithm is not None and checksum is not None:
            _child(part, checksum_element(page.checksum_algorithm), checksum)
    return _document(root)


@dataclass(frozen=True)
class UploadsPage:
    """One page of ListMultipartUploads: (Key, UploadId, Initiated) of each upload, and the markers."""

    bucket: str
    owner: str
    prefix: str
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    uploads: Sequence[tuple[str, str, datetime]]
    truncated: bool


def list_multipart_uploads(page: UploadsPage) -> bytes:
    """A ``ListMultipartUploadsResult``."""
    root = ET.Element("ListMultipartUploadsResult", xmlns=NAMESPACE)
    _child(root, "Bucket", page.bucket)
    _child(root, "KeyMarker", page.key_marker)
    _child(root, "UploadIdMarker", page.upload_id_marker)
    if page.truncated and page.uploads:
        _child(root, "NextKeyMarker", page.uploads[-1][0])
        _child(root, "NextUploadIdMarker", page.uploads[-1][1])
    _child(root, "Prefix", page.prefix)
    _child(root, "MaxUploads", str(page.max_uploads))
    _child(root, "IsTruncated", "true" if page.truncated else "false")
    for key, upload_id, initiated in page.uploads:
        upload = _child(root, "Upload")
        _child(upload, "Key", key)
        _child(upload, "UploadId", upload_id)
        _person(_child(upload, "Initiator"), page.owner)
        _person(_child(upload, "Owner"), page.owner)
        _child(upload, "StorageClass", "STANDARD")
        _child(upload, "Initiated", timestamp(initiated))
    return _document(root)


@dataclass(frozen=True)
class LifecycleRule:
    """One rule of a bucket's lifecycle configuration: its objects under ``prefix`` expire ``expiration_days``
    after they were last written, their multipart uploads are aborted ``abort_days`` after, and their blobs go to
    ``storage_class`` once ``transition_days`` cold (None: never)."""

    prefix: str
    expiration_days: int | None
    abort_days: int | None
    transition_days: int | None = None
    storage_class: str | None = None


#: Rule elements this API does not carry out: a configuration naming one is refused (501), changing nothing.
_UNSUPPORTED_RULE_ELEMENTS = {
    "NoncurrentVersionTransition": "lifecycle rules of noncurrent versions",
    "NoncurrentVersionExpiration": "lifecycle rules of noncurrent versions",
}
_UNSUPPORTED_FILTERS = {"And", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"}


def parse_lifecycle(body: bytes) -> list[LifecycleRule]:
    """The rules of a PutBucketLifecycleConfiguration ``LifecycleConfiguration`` document: S3Error NotImplemented
    for an element this API does not carry out (transitions, noncurrent versions, tag and size filters, an
    expiration by date or of delete markers, a disabled rule), MalformedXML or InvalidArgument for a bad one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("MalformedXML", "the XML you provided was not well-formed") from None
    if _local(root.tag) != "LifecycleConfiguration":
        raise S3Error("MalformedXML", "a lifecycle configuration is a LifecycleConfiguration element")
    rules = [_lifecycle_rule(element) for element in root]
    if not rules:
        raise S3Error("MalformedXML", "a LifecycleConfiguration element holds at least one Rule")
    return rules


def _lifecycle_rule(element: ET.Element) -> LifecycleRule:
    if _local(element.tag) != "Rule":
        raise S3Error("MalformedXML", f"unexpected element {_local(element.tag)} in LifecycleConfiguration")
    children = {_local(child.tag): child for child in element}
    for name, feature in _UNSUPPORTED_RULE_ELEMENTS.items():
        if name in children:
            raise S3Error("NotImplemented", f"{feature} are not implemented by blobstore's S3 API")
    if sum(_local(child.tag) == "Transition" for child in element) > 1:
        raise S3Error("NotImplemented", "more than one Transition per rule is not implemented by blobstore's S3 API")
    status = (children["Status"].text or "").strip() if "Status" in children else ""
    if status == "Disabled":
        raise S3Error("NotImplemented", "disabled lifecycle rules are not implemented by blobstore's S3 API")
    if status != "Enabled":
        raise S3Error("MalformedXML", "a Rule's Status is Enabled or Disabled")
    known = {"ID", "Status", "Prefix", "Filter", "Expiration", "AbortIncompleteMultipartUpload", "Transition"}
    unknown = set(children) - known
    if unknown:
        raise S3Error("MalformedXML", f"unexpected element {sorted(unknown)[0]} in Rule")
    expiration = _only_days(
        children.get("Expiration"),
        "Days",
        {"Date": "expiration by date", "ExpiredObjectDeleteMarker": "expiration of delete markers"},
    )
    abort = _only_days(children.get("AbortIncompleteMultipartUpload"), "DaysAfterInitiation", {})
    transition_days, storage_class = _transition(children.get("Transition"))
    if expiration is None and abort is None and transition_days is None:
        raise S3Error("InvalidRequest", "at least one action needs to be specified in a rule")
    return LifecycleRule(_rule_prefix(children), expiration, abort, transition_days, storage_class)


#: Storage classes of S3 that blobstore does not move blobs to: their objects need a restore before a read.
_RESTORED_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}


def _transition(action: ET.Element | None) -> tuple[int | None, str | None]:
    """A Transition's Days and StorageClass ((None, None) without one)."""
    if action is None:
        return None, None
    found = [child for child in action if _local(child.tag) == "StorageClass"]
    storage_class = (found[0].text or "").strip() if found else ""
    if storage_class in _RESTORED_CLASSES:
        raise S3Error("NotImplemented", f"transitions to {storage_class} are not implemented by blobstore's S3 API")
    if storage_class not in COLD_CLASSES:
        raise S3Error("InvalidStorageClass", f"a Transition's StorageClass is one of {', '.join(COLD_CLASSES)}")
    timing = ET.Element(action.tag)
    timing.extend(child for child in action if _local(child.tag) != "StorageClass")
    return _only_days(timing, "Days", {"Date": "transition by date"}), storage_class


def _rule_prefix(children: dict[str, ET.Element]) -> str:
    """A rule's prefix: its Filter's Prefix, or its (older) Prefix, or none."""
    if "Filter" in children and "Prefix" in children:
        raise S3Error("MalformedXML", "a Rule has a Filter or a Prefix, not both")
    if "Filter" not in children:
        return (children["Prefix"].text or "") if "Prefix" in children else ""
    parts = {_local(child.tag): child for child in children["Filter"]}
    if unsupported := _UNSUPPORTED_FILTERS & set(parts):
        raise S3Error("NotImplemented", f"lifecycle filters by {sorted(unsupported)[0]} are not implemented")
    if set(parts) - {"Prefix"}:
        raise S3Error("MalformedXML", "a Filter holds a Prefix")
    return (parts["Prefix"].text or "") if "Prefix" in parts else ""


def _only_days(action: ET.Element | None, field: str, unsupported: dict[str, str]) -> int | None:
    """The whole positive number of days ``field`` of ``action`` (None without the action)."""
    if action is None:
        return None
    fields = {_local(child.tag): (child.text or "").strip() for child in action}
    for name, feature in unsupported.items():
        if name in fields:
            raise S3Error("NotImplemented", f"{feature} is not implemented by blobstore's S3 API")
    days = fields.get(field, "")
    if set(fields) != {field} or not days.isascii() or not days.isdigit() or not 0 < int(days) <= 36500:
        raise S3Error("InvalidArgument", f"{_local(action.tag)} takes {field}: a whole number of days from 1 to 36500")
    return int(days)


def lifecycle_configuration(rules: Sequence[LifecycleRule]) -> bytes:
    """A ``LifecycleConfiguration`` of ``rules`` (GetBucketLifecycleConfiguration); rule IDs are not kept."""
    root = ET.Element("LifecycleConfiguration", xmlns=NAMESPACE)
    for rule in rules:
        element = _child(root, "Rule")
        _child(_child(element, "Filter"), "Prefix", rule.prefix)
        _child(element, "Status", "Enabled")
        if rule.expiration_days is not None:
            _child(_child(element, "Expiration"), "Days", str(rule.expiration_days))
        if rule.abort_days is not None:
            _child(_child(element, "AbortIncompleteMultipartUpload"), "DaysAfterInitiation", str(rule.abort_days))
        if rule.transition_days is not None and rule.storage_class is not None:
            transition = _child(element, "Transition")
            _child(transition, "Days", str(rule.transition_days))
            _child(transition, "StorageClass", rule.storage_class)
    return _document(root)
