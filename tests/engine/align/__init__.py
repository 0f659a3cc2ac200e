"""tests.engine.align."""
