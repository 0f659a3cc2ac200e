"""tests.engine.ingest."""
