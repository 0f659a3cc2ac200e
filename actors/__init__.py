"""omnialign: actors."""
