"""The relationship model: pure functions from touchpoints to per-contact state and status."""
