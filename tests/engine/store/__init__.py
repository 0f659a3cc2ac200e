"""tests.engine.store."""
