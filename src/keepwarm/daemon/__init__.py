"""The daemon: ingest batches, keep the projection current, and (later) the service loop."""
