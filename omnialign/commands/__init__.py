"""One module per ``omnialign`` subcommand; each exposes ``register(subparsers)``."""
