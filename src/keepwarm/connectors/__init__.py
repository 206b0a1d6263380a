"""Connectors: one module per source kind; importing this package registers them all."""
