"""The owner's meetings: recurring 1:1s and team syncs, client reviews, dinners, all-hands.

Meetings with a contact land on days their email episodes already happen (the same episode
stream), so the calendar adds weight to a rhythm instead of inventing a second one. How a
meeting is built (answers, series, holidays) is `planner.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta

from keepwarm.demo.people import FAMILY, NEWCO_MANAGER, OLDCO_MANAGER, STAYERS, SUPPRESSED
from keepwarm.demo.planner import (
    DECLINED,
    TENTATIVE,
    Meeting,
    Planner,
    london_at,
    with_partstat,
)
from keepwarm.demo.timeline import episodes
from keepwarm.demo.world import LONDON, World

__all__ = ["Meeting", "plan"]  # Meeting is re-exported: the calendar and extras import it here


def plan(world: World) -> list[Meeting]:
    """Every meeting of the two years, plus the next few weeks."""
    planner = _Meetings(world)
    return [*planner.oldco(), *planner.newco(), *planner.clients(), *planner.private()]


class _Meetings(Planner):
    """The owner's meetings, one method per part of their life."""

    def oldco(self) -> Iterator[Meeting]:
        staff = self.w.in_group("oldco", "oldco_stayer")
        until = self.w.move - timedelta(days=3)
        boss = self.who(OLDCO_MANAGER[1])
        one = self.weekly(self.w.start, 1, 10)
        yield self.meeting(
            "oldco-1on1",
            "Alex / Graham 1:1",
            one,
            30,
            boss,
            [self.me_old],
            rrule={"freq": "weekly", "until": until},
            exdates=self.on_holiday(one, until),
        )
        team = [self.who(STAYERS[0][1]), *map(self.who, staff[3:6])]
        sync = self.weekly(self.w.start, 3, 14)
        moved = london_at(sync.date() + timedelta(weeks=30), 14)  # a launch pushed one sync a day
        yield self.meeting(
            "oldco-sync",
            "Platform team sync",
            sync,
            45,
            self.me_old,
            team,
            rrule={"freq": "weekly", "until": until},
            exdates=self.on_holiday(sync, until),
            moved=((moved, moved + timedelta(days=1, hours=-3)),),
        )
        everyone = [self.me_old, *map(self.who, staff)]
        yield self.meeting(
            "oldco-all-hands",
            "oldco all-hands",
            self.first_of_month(self.w.start, 2, 16),
            60,
            boss,
            everyone,
            rrule={"freq": "monthly", "byday": "1WE", "until": until},
        )
        for i, (name, address) in enumerate(STAYERS):
            for j, at in enumerate(episodes(self.w, self.people[address], 1)[1::3]):
                lunch = london_at(at.astimezone(LONDON).date(), 12.5)
                if lunch.astimezone(UTC) < self.w.now - timedelta(hours=2):
                    yield self.meeting(
                        f"lunch-{i}-{j}",
                        f"Lunch with {name.split()[0]}",
                        lunch,
                        60,
                        self.me_home,
                        [(name, address)],
                    )

    def newco(self) -> Iterator[Meeting]:
        staff = self.w.in_group("newco")
        boss = self.who(NEWCO_MANAGER[1])
        one = self.weekly(self.w.move, 0, 11)
        # One 1:1 moved to the Tuesday (the RECURRENCE-ID exception), the rest open-ended.
        moved = london_at(one.date() + timedelta(weeks=3), 11)
        yield self.meeting(
            "newco-1on1",
            "Sana / Alex weekly",
            one,
            30,
            boss,
            [self.me_new],
            rrule={"freq": "weekly"},
            exdates=self.on_holiday(one, self.w.now),
            invited_by_mail=True,
            moved=((moved, moved + timedelta(days=1, hours=3)),),
        )
        standup = [self.me_new, *map(self.who, staff[1:4])]
        yield self.meeting(
            "newco-standup",
            "Payments squad sync",
            self.weekly(self.w.move, 2, 10),
            30,
            boss,
            standup,
            rrule={"freq": "weekly"},
            invited_by_mail=True,
        )
        crowd = [self.me_new, *map(self.who, staff)]
        yield self.meeting(
            "newco-all-hands",
            "newco all-hands",
            self.first_of_month(self.w.move, 3, 16),
            45,
            boss,
            crowd,
            rrule={"freq": "monthly", "byday": "1TH"},
            invited_by_mail=True,
        )
        offsite = (self.w.move + timedelta(days=45)).astimezone(LONDON).date()
        yield self.meeting(
            "newco-offsite",
            "Team offsite",
            offsite,
            2 * 24 * 60,
            self.who(staff[4]),
            [self.me_new, *map(self.who, staff[:8])],
            invited_by_mail=True,
        )
        demo = self.weekly(self.w.move + timedelta(days=60), 1, 15)
        declined = self.meeting(
            "vendor-demo",
            "Vendor demo: ObservaTool",
            demo,
            60,
            self.who(staff[5]),
            [self.me_new, *map(self.who, staff[6:9])],
            invited_by_mail=True,
        )
        yield with_partstat(declined, self.me_new, DECLINED)

    def clients(self) -> Iterator[Meeting]:
        """Quarterly reviews on the days of the main contact's email episodes, plus one ahead."""
        for contact in self.w.in_group("client"):
            if contact.spans[0].cadence_days != 90.0:
                continue
            # A slot in both offices' working hours: New York mornings are London afternoons.
            slot = 15.0 if contact.tz == "America/New_York" else 10.5
            for j, at in enumerate(episodes(self.w, contact, 0)):
                review = london_at(at.astimezone(LONDON).date(), slot)
                if review < self.w.now - timedelta(hours=2) and self.rng.random() < 0.7:
                    me = self.me_old if review < self.w.move else self.me_new
                    yield self.meeting(
                        f"review-{contact.org}-{j}",
                        "Quarterly review",
                        review,
                        60,
                        me,
                        [self.who(contact)],
                    )
        first = self.who(self.w.in_group("client")[0])
        ahead = self.weekly(self.w.now + timedelta(days=14), 2, 15)
        upcoming = self.meeting("review-next", "Quarterly review", ahead, 60, self.me_new, [first])
        yield with_partstat(upcoming, first, TENTATIVE)  # not answered for sure yet

    def private(self) -> Iterator[Meeting]:
        for i, friend in enumerate(self.w.in_group("close")):
            for j, at in enumerate(episodes(self.w, friend, 0)[2::6]):
                dinner = london_at(at.astimezone(LONDON).date(), 19.5)
                if dinner.astimezone(UTC) < self.w.now - timedelta(hours=4):
                    yield self.meeting(
                        f"dinner-{i}-{j}",
                        f"Dinner with {friend.first_name}",
                        dinner,
                        150,
                        self.me_home,
                        [self.who(friend)],
                    )
        friend = self.w.in_group("close")[0]
        soon = self.weekly(self.w.now + timedelta(days=2), 4, 19)
        yield self.meeting(
            "dinner-next",
            f"Dinner with {friend.first_name}",
            soon,
            150,
            self.me_home,
            [self.who(friend)],
        )
        # Called off the day before: a cancelled event is no touchpoint.
        off = self.weekly(self.w.now - timedelta(days=60), 5, 12.5)
        yield self.meeting(
            "lunch-cancelled",
            "Lunch (cancelled)",
            off,
            90,
            self.me_home,
            [self.who(self.w.in_group("friend")[3])],
            status="CANCELLED",
        )
        hannah = self.weekly(self.w.now + timedelta(days=6), 2, 12.5)
        yield self.meeting("catch-up-hannah", "Catch-up", hannah, 60, SUPPRESSED, [self.me_home])
        sister = self.who(FAMILY[2][1])
        birthday = (self.w.start + timedelta(days=40)).astimezone(LONDON).date()
        yield self.meeting(
            "lucia-birthday",
            "Lucía's birthday",
            birthday,
            24 * 60,
            self.me_home,
            [],
            rrule={"freq": "yearly"},
        )
        porto = (self.w.now - timedelta(days=200)).astimezone(LONDON).date()
        family = [self.me_home, *(self.who(a) for _, a, _ in FAMILY[:4])]
        yield self.meeting("porto", "Family weekend in Porto", porto, 3 * 24 * 60, sister, family)
