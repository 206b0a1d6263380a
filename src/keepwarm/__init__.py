"""keepwarm: notice the relationships you are letting go cold, before they are gone."""

__version__ = "0.1.0"
