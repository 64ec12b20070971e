"""What a store is built from when it opens: its settings, the pairing of database and storage, the core every
service takes (context), and the ingest and verified reads of bytes."""
