"""Error families. The CLI turns them into messages and exit codes; nothing else catches broadly."""

from __future__ import annotations


class KeepwarmError(Exception):
    """Base of every error keepwarm raises on purpose."""


class UserError(KeepwarmError):
    """A mistake the user can fix; shown without a traceback (exit code 2 for config and usage)."""


class ConfigError(UserError):
    """The configuration is invalid. `problems` holds every `key.path: what is wrong` line."""

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        where = f" in {path}" if path else ""
        super().__init__(f"invalid configuration{where}:\n  " + "\n  ".join(self.problems))


class ConnectorError(KeepwarmError):
    """Base of errors a connector raises; they stop one account, never the others."""


class TransientError(ConnectorError):
    """Temporary failure (network, server busy, throttled): retry later with backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Credentials are missing, expired or revoked: the account needs the user. `fix` says how."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class CursorExpired(ConnectorError):
    """The stored cursor is no longer valid at the source: run a full resync of the account."""


class MalformedInput(KeepwarmError):
    """One message or event cannot be read; it is skipped and counted with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class StoreError(KeepwarmError):
    """The database cannot be opened or migrated."""


class LeaseLost(StoreError):
    """Team mode: this worker's lease on `account` ran out or passed to another worker, so the
    write was refused and rolled back; the account is another worker's to poll now."""

    def __init__(self, account: str, message: str) -> None:
        super().__init__(message)
        self.account = account
