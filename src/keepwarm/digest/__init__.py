"""The weekly digest: compose (pure), render (templates), send (SMTP + outbox)."""
