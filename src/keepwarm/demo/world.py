"""The shape of the demo world: the owner, the calendar of their life, and who they talk to."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
HISTORY_DAYS = 730
# The owner moved from oldco to newco this long before `now`: long enough for newco to have a
# rhythm, short enough that every oldco colleague who stopped writing is many gaps overdue.
MOVE_DAYS_AGO = 152
EMPLOYER = "employer"  # Span.owner for clients, who followed the owner from oldco to newco


Periods = tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True, slots=True)
class Owner:
    name: str
    personal: str
    old_work: str  # still an identity: two years of their own sent mail come from it
    new_work: str

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.personal, self.new_work, self.old_work)


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of time in which the owner and a contact talk at a rhythm.

    Episodes are drawn backwards from `last`, so the final one sits exactly where the scenario
    needs it (recent for a warm contact, months ago for one who went quiet).
    """

    start: datetime
    last: datetime
    cadence_days: float  # the median gap between episodes
    sigma: float  # spread of the natural log of the gaps
    owner: str  # the owner's address in this span, or EMPLOYER: whichever job they had then
    work: bool  # business hours, none on the owner's holidays


@dataclass(frozen=True, slots=True)
class Beat:
    """One scripted message of a scenario."""

    at: datetime
    outbound: bool


@dataclass(frozen=True, slots=True)
class Scene:
    """A scripted thread that a scenario depends on (a reach-out, an unanswered email)."""

    subject: str
    owner: str
    beats: tuple[Beat, ...]


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    address: str
    group: str  # family, close, friend, drift, owed, reconnected, suppressed, oldco, ...
    org: str | None = None  # the employer's domain for colleagues and clients
    tz: str = "Europe/London"
    spans: tuple[Span, ...] = ()
    scenes: tuple[Scene, ...] = ()
    out_share: float = 0.5  # how often the owner is the one who starts a thread

    @property
    def first_name(self) -> str:
        return self.name.split()[0]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the digest should say about one contact, and why: for the integrator's checks."""

    address: str
    name: str
    expect: str  # warm | cooling | cold | new | owed_reply | reconnected | suppressed
    why: str


@dataclass(frozen=True, slots=True)
class World:
    now: datetime  # aware UTC
    start: datetime
    move: datetime  # the owner's first day at newco
    vacations: Periods
    owner: Owner
    contacts: tuple[Contact, ...]
    scenarios: tuple[Scenario, ...]
    seed: int

    def rng(self, *parts: object) -> random.Random:
        """An independent stream per purpose, so adding a contact does not reshuffle the rest."""
        # String seeds hash with SHA-512 in random.seed version 2: stable across runs and
        # unaffected by PYTHONHASHSEED.
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def owner_address(self, span: Span, at: datetime) -> str:
        if span.owner != EMPLOYER:
            return span.owner
        return self.owner.old_work if at < self.move else self.owner.new_work

    def on_vacation(self, at: datetime) -> bool:
        return any(begin <= at < end for begin, end in self.vacations)

    def in_group(self, *groups: str) -> tuple[Contact, ...]:
        return tuple(c for c in self.contacts if c.group in groups)


def frame(
    now: datetime,
) -> tuple[datetime, datetime, datetime, tuple[tuple[datetime, datetime], ...]]:
    """(now in UTC, start of history, first day at newco, vacations) for a given `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    start = now - timedelta(days=HISTORY_DAYS)
    move_day = (now - timedelta(days=MOVE_DAYS_AGO)).astimezone(LONDON).date()
    move_day -= timedelta(days=move_day.weekday())  # people start new jobs on a Monday
    move = datetime(move_day.year, move_day.month, move_day.day, 9, tzinfo=LONDON)
    # Two weeks each summer, a week at the turn of the year, and a short break at newco; none
    # near the job change or in the last month, where scenarios need exact timing.
    vacations = tuple(
        (_local_midnight(now - timedelta(days=ago)), _local_midnight(now - timedelta(days=ago - n)))
        for ago, n in ((610, 14), (470, 9), (245, 14), (105, 8))
    )
    return now, start, move.astimezone(UTC), vacations


def _local_midnight(at: datetime) -> datetime:
    day = at.astimezone(LONDON).date()
    return datetime(day.year, day.month, day.day, tzinfo=LONDON).astimezone(UTC)
