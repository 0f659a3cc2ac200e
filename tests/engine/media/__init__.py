"""tests.engine.media."""
