"""omnialign: serve_apps."""
