"""Alembic revisions, shipped as a package so installs carry them."""
