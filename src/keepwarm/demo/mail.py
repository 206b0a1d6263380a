"""Person-to-person mail: threaded conversations in both directions, and the scripted scenes.

Also the out-of-office traffic around holidays, because real mailboxes have it and detection
must not mistake an auto-reply for a person writing back.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from keepwarm.demo.maildir import Addr, Email
from keepwarm.demo.text import BODIES, SUBJECTS, theme
from keepwarm.demo.timeline import episodes, place, reply_delay
from keepwarm.demo.world import LONDON, Contact, Scene, Span, World

_WORK_GROUPS = ("oldco", "oldco_stayer", "newco", "client")
# Copies and holiday exchanges add touches outside a contact's own rhythm, which would make a
# slow rhythm look faster than it is. Only weekly colleagues get them: min_days keeps a week's
# silence from ever looking long, whatever the extra touches teach the model.
_WEEKLY = ("oldco", "oldco_stayer", "newco")
# A thread the contact ended this long ago gets the owner's answer: otherwise every contact
# would risk showing as an owed reply, and only the scripted one should.
_ANSWER_AFTER = timedelta(days=2)
_THREAD_LENGTHS = {True: (1, 2, 2, 2, 3, 3, 4, 4, 6), False: (1, 1, 2, 2, 2, 3, 3, 4, 5)}


class MessageIds:
    """Deterministic, unique Message-IDs in the sender's domain."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._n = 0

    def new(self, sender: str) -> str:
        self._n += 1
        digest = hashlib.sha256(f"{self._seed}:{self._n}".encode()).hexdigest()[:16]
        return f"{digest}.{self._n}@{sender.rpartition('@')[2]}"


class Correspondence:
    """Builds every person-to-person email of the world."""

    def __init__(self, world: World, ids: MessageIds) -> None:
        self.world = world
        self.ids = ids
        self.me = world.owner.name
        self._peers: dict[str, list[Contact]] = {}
        for contact in world.in_group(*_WEEKLY):
            self._peers.setdefault(contact.org or "", []).append(contact)

    def all(self) -> Iterator[Email]:
        for contact in self.world.contacts:
            rng = self.world.rng("mail", contact.address)
            for index, span in enumerate(contact.spans):
                yield from self._span(contact, span, episodes(self.world, contact, index), rng)
            for scene in contact.scenes:
                beats = self._scene_beats(scene, ZoneInfo(contact.tz), rng)
                kind = theme(contact.group, work=False)
                yield from self.thread(contact, scene.owner, scene.subject, beats, rng, kind=kind)

    def _scene_beats(
        self, scene: Scene, zone: ZoneInfo, rng: random.Random
    ) -> list[tuple[datetime, bool]]:
        """A scene's beats at believable hours of their days, still in order."""
        out: list[tuple[datetime, bool]] = []
        for beat in scene.beats:
            at = place(rng, beat.at, zone, work=False, not_after=self.world.now)
            if out and at <= out[-1][0]:
                at = out[-1][0] + reply_delay(rng, work=False)
            out.append((at, beat.outbound))
        return out

    def _span(
        self, contact: Contact, span: Span, starts: list[datetime], rng: random.Random
    ) -> Iterator[Email]:
        kind = theme(contact.group, work=span.work)
        for index, start in enumerate(starts):
            owner = self.world.owner_address(span, start)
            outbound = rng.random() < contact.out_share
            at, beats = start, []
            for _ in range(rng.choice(_THREAD_LENGTHS[span.work])):
                beats.append((at, outbound))
                at += reply_delay(rng, work=span.work)
                outbound = not outbound
            last_in = not beats[-1][1] and beats[-1][0] < self.world.now - _ANSWER_AFTER
            if index == len(starts) - 1 and last_in:
                beats.append((beats[-1][0] + reply_delay(rng, work=span.work), True))
            cc = self._cc(contact, start, rng) if span.work else ()
            subject = rng.choice(SUBJECTS[kind])
            yield from self.thread(contact, owner, subject, beats, rng, kind=kind, cc=cc)

    def thread(
        self,
        contact: Contact,
        owner: str,
        subject: str,
        beats: list[tuple[datetime, bool]],
        rng: random.Random,
        *,
        kind: str,
        cc: tuple[Addr, ...] = (),
    ) -> Iterator[Email]:
        """One thread: `beats` are (time, owner wrote it); replies are threaded and "Re:"."""
        bodies = BODIES[kind]
        refs: tuple[str, ...] = ()
        me: Addr = (self.me, owner)
        them: Addr = (contact.name, contact.address)
        for i, (at, outbound) in enumerate(beats):
            if at > self.world.now:
                return
            sender, recipient = (me, them) if outbound else (them, me)
            message_id = self.ids.new(sender[1])
            yield Email(
                at=at,
                sender=sender,
                to=(recipient,),
                cc=cc,
                subject=subject if i == 0 else f"Re: {subject}",
                message_id=message_id,
                in_reply_to=refs[-1] if refs else None,
                references=refs[-10:],
                body=rng.choice(bodies),
                sent=outbound,
                zone="Europe/London" if outbound else contact.tz,
                seen=outbound or at < self.world.now - timedelta(days=1),
            )
            refs += (message_id,)

    def _cc(self, contact: Contact, at: datetime, rng: random.Random) -> tuple[Addr, ...]:
        """Now and then a colleague of theirs who was around at the time is copied in."""
        if rng.random() > 0.2:
            return ()
        peers = [
            p
            for p in self._peers.get(contact.org or "", [])
            if p is not contact and any(s.work and s.start <= at <= s.last for s in p.spans)
        ]
        return ((peer.name, peer.address),) if (peer := _pick(rng, peers)) else ()

    def auto_replies(self, mails: list[Email]) -> Iterator[Email]:
        """Colleagues' out-of-office answers to a few of the owner's work emails."""
        rng = self.world.rng("auto-replies")
        by_address = {c.address: c for c in self.world.in_group(*_WORK_GROUPS)}
        for mail in mails:
            contact = by_address.get(mail.to[0][1]) if mail.sent else None
            if contact is None or rng.random() > 0.012 or mail.in_reply_to:
                continue
            at = mail.at + timedelta(minutes=rng.uniform(0.5, 4))
            if at < self.world.now:
                yield _auto_reply(self.ids, (contact.name, contact.address), mail, at, contact.tz)

    def holidays(self) -> Iterator[Email]:
        """While the owner is away, colleagues write, get the owner's auto-reply, and an answer
        on the first working day back."""
        rng = self.world.rng("holidays")
        for begin, end in self.world.vacations:
            active = [
                (c, s)
                for c in self.world.in_group(*_WEEKLY)
                for s in c.spans
                if s.work and s.start <= begin and end <= s.last
            ]
            for contact, span in rng.sample(active, min(4, len(active))):
                at = place(rng, rng.uniform(0.1, 0.9) * (end - begin) + begin,
                           ZoneInfo(contact.tz), work=True, not_after=end)  # fmt: skip
                if at < begin:
                    continue
                owner = self.world.owner_address(span, at)
                beats = [(at, False), (_back_at_work(end, rng), True)]
                subject = rng.choice(SUBJECTS["work"])
                mails = list(self.thread(contact, owner, subject, beats, rng, kind="work"))
                yield from mails
                me: Addr = (self.me, owner)
                away = at + timedelta(minutes=rng.uniform(0.2, 1.5))
                yield _auto_reply(self.ids, me, mails[0], away, "Europe/London", sent=True)


def _auto_reply(
    ids: MessageIds, sender: Addr, to: Email, at: datetime, zone: str, *, sent: bool = False
) -> Email:
    return Email(
        at=at,
        sender=sender,
        to=(to.sender,),
        subject=f"Automatic reply: {to.subject}",
        message_id=ids.new(sender[1]),
        in_reply_to=to.message_id,
        references=(*to.references, *([to.message_id] if to.message_id else [])),
        body="I am out of the office with limited access to email and will reply when I am back.",
        headers=(("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")),
        sent=sent,
        zone=zone,
    )


def _back_at_work(end: datetime, rng: random.Random) -> datetime:
    day = end.astimezone(LONDON).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, tzinfo=LONDON) + timedelta(
        minutes=rng.uniform(15, 150)
    )


def _pick(rng: random.Random, items: list[Contact]) -> Contact | None:
    return rng.choice(items) if items else None
