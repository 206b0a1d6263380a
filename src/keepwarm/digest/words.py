"""The digest's wording: dates, durations, rhythms and the suggested light touch. Pure."""

from __future__ import annotations

from datetime import datetime, tzinfo

from keepwarm.relationship.state import Assessment, Circle

# A silence this long calls for a "thinking of you" note rather than picking up a thread.
LONG_SILENCE_DAYS = 90.0

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 reply`, `2 replies` (give `many` when adding an s is wrong)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def day(when: datetime, tz: tzinfo, now: datetime) -> str:
    """`3 Nov`, with the year only when it is not the current one (`3 Nov 2025`)."""
    local = when.astimezone(tz)
    text = f"{local.day} {_MONTHS[local.month - 1][:3]}"
    return text if local.year == now.astimezone(tz).year else f"{text} {local.year}"


def month(when: datetime, tz: tzinfo, now: datetime) -> str:
    """`June`, or `June 2025` when it is not the current year."""
    local = when.astimezone(tz)
    text = _MONTHS[local.month - 1]
    return text if local.year == now.astimezone(tz).year else f"{text} {local.year}"


def duration(days: float) -> str:
    """A span the way people say it: `5 days`, `3 weeks`, `4 months`, `2 years`."""
    if days < 13.5:
        return plural(max(1, round(days)), "day")
    if days < 91:  # "9 weeks" is how people count a silence under three months
        return plural(round(days / 7), "week")
    if days < 715:  # the same thresholds as relationship.rhythm, so reasons and rhythm agree
        return plural(round(days / 30.44), "month")
    return plural(round(days / 365.25), "year")


def rhythm(typical_gap_days: float | None, silence_days: float | None) -> str:
    """`usually every ~3 weeks; 9 weeks now`, or just the silence when no rhythm is known."""
    if silence_days is None:
        return "no touch yet"
    if typical_gap_days is None:
        return f"{duration(silence_days)} since the last touch"
    return f"usually every ~{duration(typical_gap_days)}; {duration(silence_days)} now"


def circle_text(circle: Circle, tz: tzinfo, now: datetime) -> str:
    """`7 of 9 people at oldco.example went quiet since March`."""
    group = f"at {circle.name}" if circle.kind == "organisation" else f"tagged {circle.name}"
    people = plural(len(circle.members), "person", "people")
    since = month(circle.since, tz, now)
    return f"{len(circle.cold)} of {people} {group} went quiet since {since}"


def suggestion(assessment: Assessment, *, tz: tzinfo, now: datetime, quiet_org: str | None) -> str:
    """The lightest touch that fits the case, most specific first.

    An unanswered message beats everything (the ball is in your court); a whole organisation
    going quiet usually means one of you moved on, so asking about it is natural; people you
    met are worth meeting again; a long silence wants a note with no agenda.
    """
    state = assessment.state
    if assessment.owed_reply_since is not None:
        return f"Reply to their message from {day(assessment.owed_reply_since, tz, now)}"
    if quiet_org is not None:
        return f"Ask how things are at {quiet_org}"
    if state.meetings > 0:
        if state.last_kind == "meeting" and state.last_touch is not None:
            met = f"you last met in {month(state.last_touch, tz, now)}"
        else:
            times = "once" if state.meetings == 1 else f"{state.meetings} times"
            met = f"you have met {times}"
        return f"Suggest a coffee or a call — {met}"
    if (assessment.silence_days or 0.0) >= LONG_SILENCE_DAYS:
        return "A short 'thinking of you' note"
    return "A quick hello: ask what they are working on"
