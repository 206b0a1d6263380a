"""One line of the digest: what it says about a person, a circle or an account. Pure; no I/O.

`compose.py` decides who is in which section and in what order; this module decides each line's
words, the commands to snooze or ignore, and the score the person was ranked by, so every
renderer shows the same thing.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from keepwarm.config.schema import DigestConfig
from keepwarm.digest import words
from keepwarm.digest.model import AccountHealth, AccountLine, CircleLine, ContactLine
from keepwarm.digest.news import News
from keepwarm.digest.sparkline import monthly_series
from keepwarm.relationship.state import Assessment, Circle
from keepwarm.store.status import StatusChange

SNOOZE = "30d"


def score(assessment: Assessment) -> float:
    """What you stand to lose: warmth lost × how overdue.

    `overdue` is silence over the typical gap, 0 when no rhythm is known. Anyone cooling or
    cold is at least due, so it counts as no less than 1 and warmth lost alone ranks them.
    """
    return assessment.warmth_lost * max(assessment.overdue, 1.0)


@dataclass(frozen=True, slots=True)
class LineContext:
    """What every line needs besides its subject: the moment, zone, config, quiet circles and
    the status changes that are news."""

    now: datetime
    tz: tzinfo
    config: DigestConfig
    quiet_org: Mapping[str, str]  # contact key -> organisation circle they went quiet with
    news: News = field(default_factory=News)


def turned_news(a: Assessment, ctx: LineContext) -> StatusChange | None:
    """The recorded change that made this cooling or cold person news, if any."""
    if a.status not in ("cooling", "cold"):
        return None
    return ctx.news.turned.get(a.state.key)


def day_text(when: datetime | None, ctx: LineContext) -> str:
    """`3 Nov` in the digest's zone (with the year when not this one), or "never"."""
    return "never" if when is None else words.day(when, ctx.tz, ctx.now)


def suggest(a: Assessment, ctx: LineContext) -> str:
    """The light touch to suggest, naming the organisation they went quiet with, if any."""
    quiet = ctx.quiet_org.get(a.state.key)
    return words.suggestion(a, tz=ctx.tz, now=ctx.now, quiet_org=quiet)


def contact_line(
    a: Assessment,
    ctx: LineContext,
    *,
    suggestion: str | None,
    detail: str | None = None,
    reconnection: StatusChange | None = None,
) -> ContactLine:
    """One person: rhythm, last touch, sparkline, reasons, and the snooze and ignore commands.

    A person who turned cooling or cold since the previous digest is marked "newly cold";
    `reconnection`, in the reconnected section, marks one who answered since then.
    """
    state = a.state
    address = shlex.quote(state.key)  # a quote in an address must not break the command
    news: str | None = None
    previous: str | None = None
    changed: datetime | None = None
    status_text = a.status
    if reconnection is not None:
        news, changed = "newly reconnected", reconnection.at
        status_text = f"{a.status}, newly reconnected"
    elif (turned := turned_news(a, ctx)) is not None:
        news, changed, previous = f"newly {a.status}", turned.at, turned.old
        status_text = f"{news} since {day_text(turned.at, ctx)}"
    return ContactLine(
        key=state.key,
        name=state.name,
        address=state.key,
        organisation=state.organisation,
        status=a.status,
        status_text=status_text,
        rhythm=words.rhythm(a.typical_gap_days, a.silence_days),
        last_touch=state.last_touch,
        last_touch_text=day_text(state.last_touch, ctx),
        last_kind=state.last_kind,
        subject=state.last_subject if ctx.config.subjects else None,
        sparkline=monthly_series(state.monthly, ctx.now),
        suggestion=suggestion,
        detail=detail,
        reasons=a.reasons,
        snooze=f"keepwarm snooze {address} {SNOOZE}",
        ignore=f"keepwarm ignore {address}",
        score=score(a),
        news=news,
        changed_at=changed,
        previous_status=previous,
    )


def owed_line(a: Assessment, ctx: LineContext) -> ContactLine:
    """A person whose message waits for a reply, with how long it has waited."""
    since = a.owed_reply_since or ctx.now
    waited = words.duration((ctx.now - since).total_seconds() / 86400)
    detail = f"Their message of {day_text(since, ctx)} has waited {waited}."
    return contact_line(a, ctx, suggestion=suggest(a, ctx), detail=detail)


def circle_line(c: Circle, names: Mapping[str, str], ctx: LineContext) -> CircleLine:
    """An organisation or tag going quiet, with the names of its members gone cold."""
    return CircleLine(
        name=c.name,
        kind=c.kind,
        text=words.circle_text(c, ctx.tz, ctx.now),
        members=len(c.members),
        cold=len(c.cold),
        share=c.share,
        since=c.since,
        names=tuple(sorted(names.get(key, key) for key in c.cold)),
        suggestion=f"Ask how things are at {c.name}" if c.kind == "organisation" else None,
    )


def account_line(a: AccountHealth, ctx: LineContext) -> AccountLine:
    """A failing account: its error, the fix to try, and when it last synced."""
    synced = "never synced"
    if a.last_sync is not None:
        local = a.last_sync.astimezone(ctx.tz)
        synced = f"last synced {day_text(a.last_sync, ctx)} {local:%H:%M}"
    return AccountLine(
        name=a.name,
        kind=a.kind,
        error_kind=a.error_kind,
        error=a.error or (a.error_kind or "failing"),
        # Without a known fix, `status` at least shows the whole error and what to try.
        fix=a.fix or "keepwarm status",
        last_sync=a.last_sync,
        last_sync_text=synced,
    )
