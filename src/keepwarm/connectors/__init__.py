"""Connectors: one module per source kind; importing this package registers them all."""

from keepwarm.connectors import ics, maildir, mbox

__all__ = ["ics", "maildir", "mbox"]
