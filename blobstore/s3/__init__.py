"""The S3 API: a second protocol over the same store (``blobstore serve --s3-port``).

A translation layer, like blobstore.server: ``router`` names the operation
from method, path and query; ``sigv4`` checks who signed the request;
``buckets`` and ``objects`` call the same Tenant methods the library exposes;
``xml`` writes the documents; ``errors`` answers every error as an S3 XML
error. Object ``KEY`` of bucket ``B`` is the tenant's native key ``B/KEY``.
"""

from blobstore.s3.app import create_app

__all__ = ["create_app"]
