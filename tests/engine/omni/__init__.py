"""tests.engine.omni."""
