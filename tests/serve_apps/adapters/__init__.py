"""tests.serve_apps.adapters."""
