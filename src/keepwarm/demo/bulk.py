"""Machine-sent mail: newsletters, notifications and a mailing list.

None of it is a relationship, and each kind carries the signals detection is meant to catch:
List-Id and List-Unsubscribe, Precedence bulk or list, no-reply senders, Auto-Submitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from keepwarm.demo.mail import MessageIds
from keepwarm.demo.maildir import Addr, Email
from keepwarm.demo.world import LONDON, World

NEWSLETTERS = (  # name, address, days between issues, to the work address
    ("The Weekly Brief", "newsletter@weeklybrief.example", 7, False),
    ("Tech Digest", "digest@techdigest.example", 7, True),
    ("Gardening Monthly", "hello@gardeningmonthly.example", 30, False),
    ("Council News", "news@council.example.org", 14, False),
    ("Run Club", "news@runclub.example", 30, False),
)
NOTIFIERS = (  # name, address, chance per weekday, era (old / new / both), Auto-Submitted
    ("CI", "no-reply@ci.oldco.example", 0.5, "old", True),
    ("Tracker", "noreply@tracker.newco.example", 0.7, "new", True),
    ("Bank", "no-reply@bank.example", 0.05, "both", False),
    ("Parcels", "do-not-reply@parcels.example", 0.04, "both", False),
    ("FriendFace", "notifications@friendface.example", 0.2, "both", False),
)
LIST = ("maps-discuss", "maps-discuss@lists.example.org", "maps-discuss.lists.example.org")
LIST_SUBJECTS = (
    "Tile server caching", "Import of footpaths", "Meetup?", "Rendering bug at zoom 17",
    "New contributor guide", "Licence question",
)  # fmt: skip


class Bulk:
    def __init__(self, world: World, ids: MessageIds) -> None:
        self.w = world
        self.ids = ids
        self.rng = world.rng("bulk")
        self.me_home: Addr = (world.owner.name, world.owner.personal)

    def me_at(self, at: datetime) -> Addr:
        owner = self.w.owner
        return (owner.name, owner.old_work if at < self.w.move else owner.new_work)

    def days(self, every: float) -> Iterator[datetime]:
        """Mornings from the start of history to now, about `every` days apart."""
        day = (self.w.start + timedelta(days=self.rng.uniform(0, every))).astimezone(LONDON)
        while day < self.w.now - timedelta(hours=1):
            yield day.replace(hour=7, minute=self.rng.randint(0, 59)).astimezone(UTC)
            day += timedelta(days=every)

    def all(self) -> Iterator[Email]:
        for part in (self.newsletters(), self.notifications(), self.mailing_list()):
            yield from (mail for mail in part if mail.at < self.w.now - timedelta(minutes=15))

    def newsletters(self) -> Iterator[Email]:
        for name, address, every, work in NEWSLETTERS:
            domain = address.rpartition("@")[2]
            for at in self.days(every):
                yield Email(
                    at,
                    (name, address),
                    (self.me_at(at) if work else self.me_home,),
                    f"{name}: {at.astimezone(LONDON):%d %B %Y}",
                    self.ids.new(address),
                    "This week's stories, picked for you.",
                    headers=(
                        ("List-Id", f"{name} <{domain}>"),
                        ("List-Unsubscribe", f"<https://{domain}/u/alex>, <mailto:leave@{domain}>"),
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                        ("Precedence", "bulk"),
                    ),
                    seen=self.rng.random() < 0.6,
                )

    def notifications(self) -> Iterator[Email]:
        for name, address, chance, era, auto in NOTIFIERS:
            for at in self.days(1):
                late = at >= self.w.move
                if at.weekday() >= 5 or (era == "old" and late) or (era == "new" and not late):
                    continue
                if self.rng.random() < chance:
                    at += timedelta(hours=self.rng.uniform(2, 10))
                    to = self.me_at(at) if era != "both" else self.me_home
                    extra = (("Auto-Submitted", "auto-generated"),) if auto else ()
                    yield Email(
                        at,
                        (name, address),
                        (to,),
                        f"[{name}] update #{self.rng.randint(1000, 9999)}",
                        self.ids.new(address),
                        "Something changed.",
                        headers=extra,
                    )

    def mailing_list(self) -> Iterator[Email]:
        """Threads among list members: people, but only ever through the list."""
        name, post, list_id = LIST
        posters = self.w.in_group("poster")
        for at in self.days(3.5):
            refs: tuple[str, ...] = ()
            subject = self.rng.choice(LIST_SUBJECTS)
            for i in range(self.rng.choice((1, 2, 2, 3, 5))):
                who = self.rng.choice(posters)
                at += timedelta(hours=self.rng.uniform(1, 14))
                message_id = self.ids.new(who.address)
                yield Email(
                    at,
                    (who.name, who.address),
                    ((name, post),),
                    subject if i == 0 else f"Re: {subject}",
                    message_id,
                    "+1, see the wiki.",
                    in_reply_to=refs[-1] if refs else None,
                    references=refs[-10:],
                    zone=who.tz,
                    headers=(
                        ("List-Id", f"Maps discussion <{list_id}>"),
                        ("List-Post", f"<mailto:{post}>"),
                        ("List-Unsubscribe", f"<mailto:{name}-leave@lists.example.org>"),
                        ("Precedence", "list"),
                        ("Sender", f"{name}-bounces@lists.example.org"),
                    ),
                )
                refs += (message_id,)
