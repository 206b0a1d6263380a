"""When people talk: irregular gaps around each rhythm, at hours that fit who they are."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from keepwarm.demo.world import Contact, World

# Nobody writes twice about unrelated things within a day: shorter draws would only merge
# into one episode and make the realised rhythm faster than the intended one.
MIN_GAP_DAYS = 1.2
# Lapses, as multiples of a span's cadence. The log-normal tail is cut at MAX_LAPSE so nobody
# steady seems to vanish and come back. In the last RECENT_DAYS it is cut at RECENT_LAPSE: a
# gap past the learned cooling threshold that the owner ends by writing is a reach-out
# answered, and uncut, a dozen steady contacts a month would show as "reconnected", drowning
# the one scenario. Long silences are the scenarios' job (people.DRIFTERS and others).
MAX_LAPSE = 2.5
RECENT_LAPSE = 1.15
RECENT_DAYS = 60
SKIP_BELOW_DAYS = 14.0
# Scenario timings must hold, so nothing is placed in the last quarter hour before `now`.
_EDGE = timedelta(minutes=15)


def episodes(world: World, contact: Contact, span_index: int) -> list[datetime]:
    """The starts of a span's episodes, oldest first, drawn backwards from the span's `last`.

    Gaps are log-normal around the span's cadence, the tail cut (see MAX_LAPSE); weekly work
    episodes on the owner's holidays do not happen, which leaves the gaps real mailboxes have.
    The draw has its own random stream, so the calendar can put meetings on the same days.
    """
    span = contact.spans[span_index]
    rng = world.rng("episodes", contact.address, span_index)
    zone = ZoneInfo(contact.tz)
    out: list[datetime] = []
    cursor = span.last
    recent = world.now - timedelta(days=RECENT_DAYS)
    while cursor >= span.start:
        at = place(rng, cursor, zone, work=span.work, not_after=min(world.now, span.last))
        # Weekly colleagues just skip the owner's holidays (min_days hides the gap). A slow
        # rhythm, or the last episode a scenario placed, moves before the holiday instead:
        # a dropped episode there would double a gap.
        keep = not out or span.cadence_days >= SKIP_BELOW_DAYS
        while keep and span.work and world.on_vacation(at):
            at = place(rng, at - timedelta(days=1), zone, work=True, not_after=at)
        if at >= span.start and not (span.work and world.on_vacation(at)):
            out.append(at)
        gap = rng.lognormvariate(math.log(span.cadence_days), span.sigma)
        lapse = RECENT_LAPSE if cursor > recent else MAX_LAPSE
        cursor -= timedelta(days=min(max(MIN_GAP_DAYS, gap), lapse * span.cadence_days))
    out.reverse()
    return out


def place(
    rng: random.Random, around: datetime, zone: ZoneInfo, *, work: bool, not_after: datetime
) -> datetime:
    """A plausible moment on the local day of `around`: office hours for work, else evenings
    and weekends. Work on a weekend moves back to the Friday; nothing lands after `not_after`."""
    day = around.astimezone(zone).date()
    if work and day.weekday() >= 5:
        day -= timedelta(days=day.weekday() - 4)
    for _ in range(7):
        at = datetime.combine(day, time(), zone) + timedelta(hours=_hour(rng, day, work=work))
        at = at.astimezone(UTC)
        if at <= not_after - _EDGE:
            return at
        day -= timedelta(days=1)
    return not_after - _EDGE


def _hour(rng: random.Random, day: date, *, work: bool) -> float:
    if work:
        # Most work mail goes out mid-morning and mid-afternoon.
        return rng.choice((rng.triangular(8.5, 12.5, 10.0), rng.triangular(13.5, 18.0, 15.0)))
    if day.weekday() >= 5:
        return rng.uniform(9.0, 21.5)
    # Weekdays: lunch break or the evening.
    return rng.uniform(12.2, 13.8) if rng.random() < 0.3 else rng.uniform(18.5, 22.8)


def reply_delay(rng: random.Random, *, work: bool) -> timedelta:
    """How long a reply in a running thread takes: minutes at work, hours otherwise.

    Capped so a burst stays on one day, as one episode."""
    median, most = (35.0, 300.0) if work else (60.0, 240.0)
    minutes = min(rng.lognormvariate(math.log(median), 1.0), most)
    return timedelta(minutes=max(2.0, minutes))
