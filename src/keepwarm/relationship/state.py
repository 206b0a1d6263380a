"""What the projection knows about one contact, and what it says about them at a given moment."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

STATUSES = ("new", "warm", "cooling", "cold", "dormant", "muted")


@dataclass(frozen=True, slots=True)
class ContactState:
    """Time-independent aggregates of one contact's touchpoints (the projection's cache row)."""

    key: str  # the primary address
    addresses: tuple[str, ...]
    name: str | None = None
    organisation: str | None = None  # from the email domain; None for free-mail domains
    touchpoints: int = 0
    episodes: int = 0
    meetings: int = 0
    first_touch: datetime | None = None
    last_touch: datetime | None = None
    last_kind: str | None = None
    last_direction: str | None = None
    last_subject: str | None = None
    last_out: datetime | None = None  # the owner's last outbound touch
    last_in: datetime | None = None  # their last inbound touch
    last_in_direct: datetime | None = None  # their last email with the owner in To
    two_way: bool = False  # a touch each way, or a meeting
    gap_count: int = 0  # gaps between episodes, in days
    log_gap_sum: float = 0.0  # sum of ln(gap days)
    log_gap_sq: float = 0.0  # sum of ln(gap days)^2
    warmth_at_last: float = 0.0  # warmth at last_touch; decays from there
    reach_out_at: datetime | None = None  # last outbound sent while they were cooling or cold
    reach_out_answered_at: datetime | None = None  # their reply to it within response_days
    monthly: dict[str, int] = field(default_factory=dict)  # "YYYY-MM" -> episodes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601)."""
        # A shallow walk: dataclasses.asdict deep-copies every field, which was a fifth of a
        # full rebuild.
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContactState:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if isinstance(value, str) and (f.name in _DATETIMES):
                value = datetime.fromisoformat(value)
            elif f.name == "addresses":
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


_FIELD_NAMES = tuple(f.name for f in fields(ContactState))
_DATETIMES = frozenset(
    {
        "first_touch", "last_touch", "last_out", "last_in", "last_in_direct",
        "reach_out_at", "reach_out_answered_at",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Assessment:
    """A contact's status at `now`, with the numbers and words behind it."""

    state: ContactState
    now: datetime
    status: str  # one of STATUSES
    tier: str
    warmth: float  # warmth now
    warmth_lost: float  # warmth_at_last - warmth now
    silence_days: float | None  # days since the last touch
    typical_gap_days: float | None  # the learned rhythm (median gap between episodes)
    survival: float | None  # P(a gap at least this long) under the learned rhythm
    overdue: float  # silence / typical gap (0 when unknown)
    owed_reply_since: datetime | None = None  # their direct email you have not answered
    reconnected_at: datetime | None = None  # they answered your reach-out (recently)
    reaching_out_since: datetime | None = None  # you reached out, no answer yet
    next_meeting: datetime | None = None  # a planned meeting suppresses the alert
    tags: tuple[str, ...] = ()
    pinned: bool = False
    snoozed_until: datetime | None = None
    reasons: tuple[str, ...] = ()  # plain words: why this status

    @property
    def alert(self) -> bool:
        """In the going-cold list: cooling or cold, not suppressed by a plan or a reach-out."""
        return (
            self.status in ("cooling", "cold")
            and self.next_meeting is None
            and self.reaching_out_since is None
        )


@dataclass(frozen=True, slots=True)
class Circle:
    """A group (organisation from the email domain, or a config tag) going quiet at once."""

    name: str  # "example.com" or a tag
    kind: str  # "organisation" | "tag"
    members: tuple[str, ...]  # contact keys of the two-way members
    cold: tuple[str, ...]  # the members now cooling or cold
    share: float  # len(cold) / len(members)
    since: datetime  # when the group went quiet (the median last touch of the cold members)
