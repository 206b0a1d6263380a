"""The odd ones out: strangers' outreach, calendar invitations by email, mail to crowds, notes
to self, and a few broken files.

Strangers are people who only ever write (they stay `new`); invitations carry text/calendar;
crowd mail has more than detect.max_group recipients; notes to self have no counterpart. The
broken files each fail one parse rule, so the sync skips them and counts the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from keepwarm.demo.mail import MessageIds
from keepwarm.demo.maildir import Addr, Email
from keepwarm.demo.meetings import Meeting
from keepwarm.demo.people import NEWCO_MANAGER
from keepwarm.demo.text import BODIES, SUBJECTS
from keepwarm.demo.timeline import place
from keepwarm.demo.world import LONDON, World

# What detect.headers reports for each broken file (see parse_headers).
MALFORMED_REASONS = ("no-date", "bad-header", "bad-date", "no-sender")
_CALENDAR = 'text/calendar; charset="utf-8"; method={method}'


class Extras:
    def __init__(self, world: World, ids: MessageIds) -> None:
        self.w = world
        self.ids = ids
        self.rng = world.rng("extras")
        self.me_home: Addr = (world.owner.name, world.owner.personal)

    def me_at(self, at: datetime) -> Addr:
        owner = self.w.owner
        return (owner.name, owner.old_work if at < self.w.move else owner.new_work)

    def when(self, days_ago: float, hour: float) -> datetime:
        day = (self.w.now - timedelta(days=days_ago)).astimezone(LONDON).date()
        return (
            datetime.combine(day, datetime.min.time(), LONDON) + timedelta(hours=hour)
        ).astimezone(UTC)

    def all(self, meetings: list[Meeting]) -> Iterator[Email]:
        for part in (self.strangers(), self.invitations(meetings), self.crowds(), self.notes()):
            yield from (mail for mail in part if mail.at < self.w.now - timedelta(minutes=15))
        yield from self.malformed()

    def strangers(self) -> Iterator[Email]:
        """Cold outreach, sometimes with a "just bumping this" a week later; never answered."""
        span = (self.w.now - self.w.start).days - 20
        for stranger in self.w.in_group("stranger"):
            rng = self.w.rng("stranger", stranger.address)
            around = self.w.start + timedelta(days=rng.uniform(5, span))
            at = place(rng, around, LONDON, work=True, not_after=self.w.now)
            to = self.me_at(at) if rng.random() < 0.7 else self.me_home
            subject = rng.choice(SUBJECTS["stranger"])
            first = Email(
                at,
                (stranger.name, stranger.address),
                (to,),
                subject,
                self.ids.new(stranger.address),
                BODIES["stranger"][0],
            )
            yield first
            if rng.random() < 0.4:
                later = at + timedelta(days=rng.uniform(4, 9))
                yield Email(
                    later,
                    first.sender,
                    (to,),
                    f"Re: {subject}",
                    self.ids.new(stranger.address),
                    BODIES["stranger"][1],
                    in_reply_to=first.message_id,
                    references=(first.message_id or "",),
                )

    def invitations(self, meetings: list[Meeting]) -> Iterator[Email]:
        """The organizer's REQUEST before the first instance, and the owner's REPLY."""
        for meeting in meetings:
            if not meeting.invited_by_mail:
                continue
            start = meeting.first_start_utc
            # Sent a few days ahead, but not before the owner had the address to receive it.
            around = max(start - timedelta(days=self.rng.uniform(2, 6)), self.w.move)
            at = place(self.rng, around, LONDON, work=True, not_after=start)
            me = self.me_at(at)
            when = f"{start.astimezone(LONDON):%a %d %b %Y %H:%M}"
            invite = Email(
                at,
                meeting.organizer,
                (me,),
                f"Invitation: {meeting.summary} @ {when}",
                self.ids.new(meeting.organizer[1]),
                _ics(meeting, "REQUEST", None),
                content_type=_CALENDAR.format(method="REQUEST"),
            )
            yield invite
            answer = next((s for who, s in meeting.attendees if who[1] == me[1]), "ACCEPTED")
            verb = "Declined" if answer == "DECLINED" else "Accepted"
            yield Email(
                at + timedelta(minutes=self.rng.uniform(10, 120)),
                me,
                (meeting.organizer,),
                f"{verb}: {meeting.summary} @ {when}",
                self.ids.new(me[1]),
                _ics(meeting, "REPLY", (me, answer)),
                sent=True,
                in_reply_to=invite.message_id,
                content_type=_CALENDAR.format(method="REPLY"),
            )

    def crowds(self) -> Iterator[Email]:
        """Announcements with more recipients than detect.max_group: no one's relationship."""
        w = self.w
        staff = [(c.name, c.address) for c in w.in_group("oldco", "oldco_stayer")]
        farewell = self.when((w.now - w.move).days + 4, 16.5)
        yield Email(
            farewell,
            self.me_at(farewell),
            tuple(staff),
            "Moving on",
            self.ids.new(w.owner.old_work),
            "Thank you all for six wonderful years.",
            sent=True,
        )
        newco = [(c.name, c.address) for c in w.in_group("newco")]
        boss = next(p for p in newco if p[1] == NEWCO_MANAGER[1])
        welcome = self.when((w.now - w.move).days, 9.6)
        yield Email(
            welcome,
            boss,
            (*newco, self.me_at(welcome)),
            "Please welcome Alex!",
            self.ids.new(boss[1]),
            "Alex joins the payments squad today.",
        )
        friends = [(c.name, c.address) for c in w.in_group("close", "friend")]
        party = self.when(300, 20.2)
        yield Email(
            party,
            self.me_home,
            tuple(friends[:14]),
            "Summer party at ours!",
            self.ids.new(w.owner.personal),
            "Saturday from 4pm, bring friends.",
            sent=True,
        )
        host = friends[1]
        wedding = self.when(420, 19.0)
        yield Email(
            wedding,
            host,
            (*friends[2:22], self.me_home),
            "Save the date!",
            self.ids.new(host[1]),
            "We're getting married! Details to follow.",
        )

    def notes(self) -> Iterator[Email]:
        """Notes to self land in Sent and in the inbox, with one Message-ID."""
        for days_ago, subject in (
            (400, "renew passport"),
            (150, "gift ideas"),
            (20, "book dentist"),
        ):
            at = self.when(days_ago, 21.3)
            message_id = self.ids.new(self.w.owner.personal)
            for sent in (True, False):
                yield Email(
                    at,
                    self.me_home,
                    (self.me_home,),
                    f"note to self: {subject}",
                    message_id,
                    subject,
                    sent=sent,
                )

    def malformed(self) -> Iterator[Email]:
        rng = self.w.rng("malformed")
        stamps = sorted(self.w.start + timedelta(days=rng.uniform(30, 700)) for _ in range(4))
        heads = (
            "From: Odd Mailer <odd@oddmailer.example>\nTo: alex.rivera@post.example\n"
            "Subject: no date on this one\nMessage-ID: <nodate.1@oddmailer.example>\n\nhello\n",
            None,
            "Date: sometime next week\nFrom: Odd Mailer <odd@oddmailer.example>\n"
            "To: alex.rivera@post.example\nSubject: when?\n\nhello\n",
            "Date: {date}\nFrom: Undisclosed sender\nTo: alex.rivera@post.example\n"
            "Subject: who sent this\n\nhello\n",
        )
        for at, head in zip(stamps, heads, strict=True):
            if head is None:
                # Binary garbage where a header block should be: no "Name: value" line at all.
                raw = bytes(rng.randrange(128, 256) for _ in range(300)).replace(b":", b".")
                raw = b"\x00\x01" + raw + b"\n\n"
            else:
                raw = head.replace("{date}", at.strftime("%a, %d %b %Y %H:%M:%S +0000")).encode()
            yield Email(at, ("", ""), (), None, None, "", raw=raw)


def _ics(meeting: Meeting, method: str, reply: tuple[Addr, str] | None) -> str:
    """A minimal iTIP body: enough for a mail client to show the invitation."""
    start = meeting.first_start_utc
    people = [reply] if reply else list(meeting.attendees)
    attendees = "".join(
        f"ATTENDEE;CN={who[0]};PARTSTAT={state}:mailto:{who[1]}\n" for who, state in people
    )
    return (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//keepwarm//demo//EN\nMETHOD:{method}\n"
        f"BEGIN:VEVENT\nUID:{meeting.uid}\nDTSTAMP:{start:%Y%m%dT%H%M%SZ}\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\nSUMMARY:{meeting.summary}\n"
        f"ORGANIZER;CN={meeting.organizer[0]}:mailto:{meeting.organizer[1]}\n{attendees}"
        "END:VEVENT\nEND:VCALENDAR"
    )
