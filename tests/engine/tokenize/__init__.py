"""tests.engine.tokenize."""
