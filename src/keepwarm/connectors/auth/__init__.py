"""Credentials for cloud connectors: token files kept private and written atomically."""
