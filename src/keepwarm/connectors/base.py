"""The connector contract and the name -> factory registry read from config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from keepwarm.config.schema import AccountConfig
from keepwarm.errors import ConnectorError
from keepwarm.model import Batch


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What a connector may know beyond its own account config."""

    state_dir: Path  # where token files live (0600)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    wanted_headers: tuple[str, ...] = ()  # header fields detection reads, for header-only fetches


class Connector(Protocol):
    """One source. `poll` yields batches; it never touches the database.

    Raises `TransientError`, `AuthError` or `CursorExpired` (keepwarm.errors) for failures of the
    whole account; one unreadable message is a `Skip` in the batch instead.
    """

    def poll(self, cursor: str | None) -> Iterator[Batch]: ...

    def close(self) -> None: ...


Factory = Callable[[AccountConfig, ConnectorContext], Connector]
_REGISTRY: dict[str, Factory] = {}


def register(kind: str) -> Callable[[Factory], Factory]:
    """Class decorator: make `kind` in an account's config build this connector."""

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[kind] = factory
        return factory

    return wrap


def create(account: AccountConfig, context: ConnectorContext) -> Connector:
    """Build the connector for `account.kind` (config validation already checked the kind)."""
    from keepwarm import connectors  # noqa: F401  (importing the package registers every kind)

    return _REGISTRY[account.kind](account, context)


def known_kinds() -> frozenset[str]:
    from keepwarm import connectors  # noqa: F401

    return frozenset(_REGISTRY)


class SourceProblem(ConnectorError):
    """The source is missing, unreadable or unusable until the user acts (a path that does not
    exist, a feed over max_bytes, a 404): not worth retrying soon. `fix` says what to do."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix
