"""Compose the weekly digest from assessments: what to say, in which order. Pure; no I/O.

Rendering (text, HTML, JSON) is `render.py`; sending is a later `send.py`. Everything a renderer
shows is decided here or in `lines.py` (each line's wording), so the three formats never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepwarm.config.schema import DIGEST_SECTIONS, DigestConfig
from keepwarm.digest import words
from keepwarm.digest.lines import (
    LineContext,
    account_line,
    circle_line,
    contact_line,
    day_text,
    owed_line,
    score,
    suggest,
    turned_news,
)
from keepwarm.digest.model import (
    AccountHealth,
    AccountLine,
    CircleLine,
    ContactLine,
    Digest,
    Section,
)
from keepwarm.digest.news import find_news
from keepwarm.digest.sparkline import month_keys
from keepwarm.relationship.state import Assessment, Circle
from keepwarm.store.status import StatusChange

TITLES = {
    "going_cold": "Going cold",
    "owed_replies": "Replies you owe",
    "reconnected": "Reconnected",
    "circles": "Circles going quiet",
    "upcoming": "Coming up: a chance to reconnect",
    "sync_health": "Accounts that need you",
}
EMPTY_LINE = "All warm this week: nobody is going cold."
UPCOMING_DAYS = 14  # a meeting this close is worth preparing for; further out it is just a plan
_QUIET = frozenset({"muted", "dormant"})

__all__ = [
    "AccountHealth",
    "AccountLine",
    "CircleLine",
    "ContactLine",
    "Digest",
    "Section",
    "compose",
    "score",
]


def compose(
    assessments: Sequence[Assessment],
    *,
    now: datetime,
    config: DigestConfig,
    circles: Sequence[Circle] = (),
    accounts: Sequence[AccountHealth] = (),
    owner_name: str | None = None,
    planned: Mapping[str, datetime] | None = None,
    changes: Sequence[StatusChange] = (),
    news_since: datetime | None = None,
) -> Digest:
    """Decide the digest for the week containing `now`.

    `planned` maps contact keys to their next planned meeting, for callers whose assessments
    predate the calendar's latest sync; the earlier of it and `next_meeting` counts.
    `changes` are the recorded status events; those after `news_since` (the previous digest)
    are news: people newly cooling or cold lead the going-cold list, marked, and reconnections
    since then are marked.
    """
    if now.tzinfo is None:
        raise ValueError("compose needs a timezone-aware now")
    tz = _zone(config.timezone)
    quiet_org = {k: c.name for c in circles if c.kind == "organisation" for k in c.cold}
    news = find_news(changes, now=now, since=news_since)
    ctx = LineContext(now, tz, config, quiet_org, news)
    listed = [a for a in assessments if _listable(a, now)]
    meeting = {a.state.key: _next_meeting(a, planned, now) for a in listed}
    names = {a.state.key: a.state.name or a.state.key for a in assessments}

    # A circle going quiet is said once, as a group (DESIGN): its members leave the person list
    # unless pinned, so a job change does not crowd out the friends drifting away.
    grouped = {k for c in circles for k in c.cold} if "circles" in config.sections else set()

    def going_cold() -> Section:
        alerts = [
            a
            for a in listed
            if a.alert and meeting[a.state.key] is None and (a.state.key not in grouped or a.pinned)
        ]
        # What changed since the previous digest comes first, so the same long-cold names
        # cannot crowd this week's news out of max_items.
        fresh = {a.state.key for a in alerts if turned_news(a, ctx) is not None}
        alerts.sort(key=lambda a: (a.state.key not in fresh, -score(a), a.state.key))
        shown = alerts[: config.max_items]
        lines = tuple(contact_line(a, ctx, suggestion=suggest(a, ctx)) for a in shown)
        return _section("going_cold", lines, omitted=len(alerts) - len(shown), news=len(fresh))

    # The other sections are capped too (digest.max_per_section), so a large mailbox with
    # thousands of unanswered messages still makes a digest one can read (and mail).
    cap = config.max_per_section

    def owed_replies() -> Section:
        owed = [a for a in listed if a.owed_reply_since is not None]
        owed.sort(key=lambda a: (a.owed_reply_since or now, a.state.key))
        lines = tuple(owed_line(a, ctx) for a in owed[:cap])
        return _section("owed_replies", lines, omitted=len(owed) - len(lines))

    def reconnected() -> Section:
        back = [a for a in listed if a.reconnected_at is not None]
        fresh = news.reconnected
        back.sort(key=lambda a: a.state.key)
        back.sort(key=lambda a: a.reconnected_at or now, reverse=True)  # the newest news first
        back.sort(key=lambda a: a.state.key not in fresh)  # recorded since the last digest
        lines = tuple(
            contact_line(
                a,
                ctx,
                suggestion=None,
                detail=f"They answered on {day_text(when, ctx)}.",
                reconnection=fresh.get(a.state.key),
            )
            for a in back[:cap]
            if (when := a.reconnected_at) is not None
        )
        count = sum(a.state.key in fresh for a in back)
        return _section("reconnected", lines, omitted=len(back) - len(lines), news=count)

    def upcoming() -> Section:
        horizon = now + timedelta(days=UPCOMING_DAYS)
        soon = [
            (when, a)
            for a in listed
            if a.status in ("cooling", "cold")
            and (when := meeting[a.state.key]) is not None
            and when <= horizon
        ]
        soon.sort(key=lambda pair: (pair[0], pair[1].state.key))
        omitted = max(len(soon) - cap, 0)
        lines = tuple(
            contact_line(
                a,
                ctx,
                detail=f"You meet on {words.day(when, tz, now)}.",
                suggestion="Use the meeting to catch up properly: ask how they have been",
            )
            for when, a in soon[:cap]
        )
        return _section("upcoming", lines, omitted=omitted)

    def circle_section() -> Section:
        ordered = sorted(circles, key=lambda c: (-c.share, c.name))
        lines = tuple(circle_line(c, names, ctx) for c in ordered[:cap])
        return _section("circles", circles=lines, omitted=len(ordered) - len(lines))

    def sync_health() -> Section:
        failing = sorted(
            (a for a in accounts if a.error is not None or a.error_kind is not None),
            key=lambda a: a.name,
        )
        return Section(
            "sync_health",
            TITLES["sync_health"],
            accounts=tuple(account_line(a, ctx) for a in failing),
        )

    builders: dict[str, Callable[[], Section]] = {
        "going_cold": going_cold,
        "owed_replies": owed_replies,
        "reconnected": reconnected,
        "circles": circle_section,
        "upcoming": upcoming,
        "sync_health": sync_health,
    }
    sections = tuple(builders[key]() for key in DIGEST_SECTIONS if key in config.sections)
    empty = all(s.size == 0 for s in sections)
    period = _period(now, tz)
    stamp = now.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    return Digest(
        period=period,
        generated_at=now,
        greeting=f"Hi {owner_name}," if owner_name else "Hi,",
        headline=EMPTY_LINE if empty else _headline(sections),
        sections=sections,
        empty=empty,
        footer=(
            f"keepwarm, week {period}, made {stamp} from mail and calendar metadata; "
            "message bodies are never read."
        ),
        months=month_keys(now),
        news_since=news_since,
    )


def _section(key: str, contacts: tuple[ContactLine, ...] = (), **values: Any) -> Section:
    """A section with its title and, when some were left out, the line that counts them."""
    omitted = values.get("omitted", 0)
    if omitted:
        one, many = _MORE[key]
        values["more"] = f"…and {omitted} more {one if omitted == 1 else many}."
    return Section(key, TITLES[key], contacts, **values)


_MORE = {
    "going_cold": ("going cold", "going cold"),
    "owed_replies": ("reply owed", "replies owed"),
    "reconnected": ("reconnected", "reconnected"),
    "circles": ("circle going quiet", "circles going quiet"),
    "upcoming": ("chance to reconnect", "chances to reconnect"),
}


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # The config loader rejects unknown zones; a digest in UTC beats no digest at all.
        return UTC


def _period(now: datetime, tz: tzinfo) -> str:
    year, week, _ = now.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def _listable(a: Assessment, now: datetime) -> bool:
    """Muted, dormant and snoozed people are never listed, in any section."""
    snoozed = a.snoozed_until is not None and a.snoozed_until > now
    return a.status not in _QUIET and not snoozed


def _next_meeting(
    a: Assessment, planned: Mapping[str, datetime] | None, now: datetime
) -> datetime | None:
    found = [a.next_meeting, (planned or {}).get(a.state.key)]
    future = [when for when in found if when is not None and when >= now]
    return min(future, default=None)


_PHRASES = {
    "going_cold": ("person going cold", "people going cold"),
    "owed_replies": ("reply owed", "replies owed"),
    "reconnected": ("reconnected", "reconnected"),
    "circles": ("circle going quiet", "circles going quiet"),
    "upcoming": ("chance to reconnect", "chances to reconnect"),
    "sync_health": ("account needs attention", "accounts need attention"),
}


def _headline(sections: Sequence[Section]) -> str:
    """`3 people going cold (1 new), 1 reply owed.`: the counts, as an email subject carries
    them; "(1 new)" counts those whose status changed since the previous digest."""
    parts = []
    for s in sections:
        count = s.size + s.omitted
        if count:
            one, many = _PHRASES[s.key]
            fresh = f" ({s.news} new)" if s.news else ""
            parts.append(f"{count} {one if count == 1 else many}{fresh}")
    text = ", ".join(parts) + "."
    return text[0].upper() + text[1:]
