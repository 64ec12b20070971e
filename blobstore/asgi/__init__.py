"""ASGI pieces both HTTP doors share: the native API (blobstore.server) and the S3 API (blobstore.s3)."""
