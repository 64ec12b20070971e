"""The blobstore command line."""
