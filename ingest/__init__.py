"""casegate ingestion: channels (SMTP, ...), the envelope, the blob store, the bus, the worker, the daemon."""
