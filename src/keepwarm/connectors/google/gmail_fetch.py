"""messages.get (format=metadata, only the wanted headers, a `fields` mask) for many ids, in
batch requests of at most 50 calls.

Google documents 50 as the largest batch Gmail takes without throttling; each call in a batch
still costs its 5 quota units. A call answered "slow down" inside a batch is retried in a later
batch, and the batch size halves (down to 5) while Google throttles, then grows back by 5 after
each clean batch: additive increase, multiplicative decrease, as TCP does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keepwarm.connectors.google.gmail_messages import GET_FIELDS
from keepwarm.connectors.google.quota import GMAIL_UNITS, is_retryable, retry_after, status_of
from keepwarm.connectors.google.service import Api
from keepwarm.errors import TransientError

if TYPE_CHECKING:
    from googleapiclient.errors import HttpError

MAX_BATCH = 50
MIN_BATCH = 5
GROW_BY = 5
GET = "gmail.users.messages.get"


@dataclass
class MetadataFetcher:
    """Fetches message metadata for one user; `size` is the current batch size."""

    api: Api
    headers: Sequence[str]
    size: int = MAX_BATCH
    gone: int = 0  # messages deleted between list and get
    _failures: int = field(default=0, repr=False)

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The message resources by id (messages deleted meanwhile are simply absent)."""
        found: dict[str, dict[str, Any]] = {}
        pending = list(dict.fromkeys(ids))
        while pending:
            chunk, pending = pending[: self.size], pending[self.size :]
            again, hint = self._batch(chunk, found)
            if not again:
                self._failures = 0
                self.size = min(MAX_BATCH, self.size + GROW_BY)
                continue
            self._failures += 1
            if self._failures >= self.api.pacer.attempts:
                raise TransientError(
                    f"Gmail kept throttling metadata reads ({len(again)} left in a batch)",
                    retry_after=hint,
                )
            self.size = max(MIN_BATCH, self.size // 2)
            self.api.pacer.backoff(self._failures - 1, hint)
            pending = again + pending
        return found

    def _batch(
        self, chunk: list[str], found: dict[str, dict[str, Any]]
    ) -> tuple[list[str], float | None]:
        """One batch request; returns the ids to try again and the longest Retry-After."""
        from googleapiclient.http import BatchHttpRequest

        again: list[str] = []
        hints: list[float] = []
        errors: list[HttpError] = []

        def answered(request_id: str, response: Any, exception: HttpError | None) -> None:
            if exception is None:
                if isinstance(response, dict):
                    found[request_id] = response
            elif is_retryable(exception):
                again.append(request_id)
                hints.append(retry_after(exception) or 0.0)
            elif status_of(exception) == 404:
                self.gone += 1  # deleted since it was listed: nothing to read
            else:
                errors.append(exception)

        batch = BatchHttpRequest(callback=answered, batch_uri=self.api.batch_uri)
        messages = self.api.resource.users().messages()
        for message_id in chunk:
            request = messages.get(
                userId=self.api.user_id,
                id=message_id,
                format="metadata",
                metadataHeaders=list(self.headers),
                fields=GET_FIELDS,
            )
            batch.add(request, request_id=message_id)
        self.api.call(batch, GET, GMAIL_UNITS[GET] * len(chunk))
        if errors:
            # One message refused for a reason other than throttling is the account's
            # problem (scopes, access), not the message's: say it once.
            raise self.api.failure(errors[0])
        return again, max(hints) if hints else None
