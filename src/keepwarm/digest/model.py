"""The digest as frozen dataclasses: what `compose` decides and every renderer shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """One account's sync state as the CLI reads it from the store."""

    name: str
    kind: str
    error_kind: str | None = None  # e.g. "auth", "transient", "cursor"; None when healthy
    error: str | None = None  # the last error, in words
    fix: str | None = None  # the exact command that fixes it, e.g. "keepwarm auth work"
    last_sync: datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactLine:
    """One person in a section, with everything any format shows about them."""

    key: str
    name: str | None
    address: str
    organisation: str | None
    status: str
    status_text: str  # the status as shown: "cold", or "newly cold since 19 Nov"
    rhythm: str  # "usually every ~3 weeks; 9 weeks now"
    last_touch: datetime | None
    last_touch_text: str  # "3 Nov" in the digest's time zone
    last_kind: str | None
    subject: str | None  # only when config.digest.subjects
    sparkline: tuple[int, ...]  # episodes per month, twelve months, oldest first
    suggestion: str | None
    detail: str | None  # what this section says about them: "you meet on 2 Dec"
    reasons: tuple[str, ...]
    snooze: str  # "keepwarm snooze ADDRESS 30d"
    ignore: str  # "keepwarm ignore ADDRESS"
    score: float
    # What changed since the previous digest, from the recorded status events; None: no news.
    news: str | None = None  # "newly cold", "newly cooling", "newly reconnected"
    changed_at: datetime | None = None  # when keepwarm recorded that change
    previous_status: str | None = None  # the status before it ("warm"); None for reconnections

    @property
    def label(self) -> str:
        return self.name or self.address

    @property
    def why(self) -> tuple[str, ...]:
        """The reasons minus a repeat of the rhythm line, which assessments often lead with."""
        out = []
        for reason in self.reasons:
            if reason.lower().startswith(self.rhythm.lower()):
                reason = reason[len(self.rhythm) :].lstrip(" ;,.—")
            if reason:
                out.append(reason)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class CircleLine:
    name: str
    kind: str  # "organisation" | "tag"
    text: str  # "7 of 9 people at oldco.example went quiet since March"
    members: int
    cold: int
    share: float
    since: datetime
    names: tuple[str, ...]  # the quiet members, by display name
    suggestion: str | None


@dataclass(frozen=True, slots=True)
class AccountLine:
    name: str
    kind: str
    error_kind: str | None
    error: str
    fix: str
    last_sync: datetime | None
    last_sync_text: str  # "last synced 3 Nov 08:00" or "never synced"


@dataclass(frozen=True, slots=True)
class Section:
    """One enabled section. Empty sections are kept so JSON readers see every enabled key."""

    key: str  # one of DIGEST_SECTIONS
    title: str
    contacts: tuple[ContactLine, ...] = ()
    circles: tuple[CircleLine, ...] = ()
    accounts: tuple[AccountLine, ...] = ()
    omitted: int = 0  # entries left out by digest.max_items / max_per_section
    news: int = 0  # entries whose status changed since the previous digest, omitted ones too
    more: str | None = None  # "…and 3 more replies owed." when some were left out

    @property
    def size(self) -> int:
        return len(self.contacts) + len(self.circles) + len(self.accounts)


@dataclass(frozen=True, slots=True)
class Digest:
    period: str  # ISO week in the digest's time zone, "2026-W48": the outbox key
    generated_at: datetime
    greeting: str
    headline: str  # one line; on an empty week, EMPTY_LINE
    sections: tuple[Section, ...]  # enabled sections in DIGEST_SECTIONS order
    empty: bool
    footer: str
    months: tuple[str, ...]  # "YYYY-MM" of each sparkline value, oldest first
    news_since: datetime | None = None  # status changes after this moment count as news

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)
