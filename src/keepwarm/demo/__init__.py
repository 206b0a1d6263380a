"""`keepwarm demo`: a generated two-year mailbox and calendar for a fictional owner.

`generate` writes a Maildir++ (inbox, `.Sent`) and an ICS file for Alex Rivera (personal
alex.rivera@post.example; work alex.rivera@oldco.example until ~5 months ago, then
alex@newco.example), plus a config. Nothing is canned: the pipeline reads the files like any
others, and the digest is whatever the model computes. Same (seed, now), same bytes.

What the digest should show under the default model, and why (`DemoData.scenarios` lists
every person with the expected outcome; checked on many (seed, now) pairs while tuning):

- Going cold: the 10 oldco colleagues who stopped at the job change (weekly for 19 months,
  silent ~5 months: a one-in-a-million gap), Graham Pike the old manager among them; three
  monthly friends silent 4x, 5x, 6x (Fatima Haddad, Ben Carter, Marta Kowalska: cold) and two
  silent ~1.9x (Wen Li, Oskar Lund: cooling). Their history is regular (spread 0.25), so with
  ~22 gaps and the network prior (90 days, 0.8, strength 4) the learned rhythm is ~36 days
  with sigma ~0.41, which puts the cooling band at ~53-71 days and 120 days far past cold.
  With max_items 10 the oldco colleagues outrank the friends, who are "omitted".
- Circles going quiet: oldco.example, 10 of 12 (two, Jordan Blake and Ruth Okafor, kept
  writing to the personal address and stay warm).
- Replies owed: only Priya Natarajan (monthly friend; wrote 4-5 days ago, reply_days 3). Every
  other contact's last thread ends with the owner, or is under two days old.
- Reconnected: only Tomás Ibarra (monthly until 7 months ago; the owner wrote 12 days ago and
  got an answer a day and a half later).
- Not in going cold, but coming up: Hannah Becker, cold by rhythm (5x overdue) with a meeting
  she organised 7-13 days ahead in the calendar.
- New, never cooling or cold: 18 strangers whose cold outreach was never answered.
- Never contacts: mailing-list posters, newsletters (List-Id, List-Unsubscribe), no-reply
  notifications, auto-replies (Auto-Submitted, both directions: colleagues' and the owner's
  out-of-office), invitations (text/calendar), crowd mail and all-hands (>10 people), notes to
  self, the owner's declined and cancelled meetings, an all-day event without guests.
- Skipped, one each: no-date, bad-header, bad-date, no-sender.
- Everyone else warm: family and close friends (inner tier), friends, newco (close tier),
  clients (tag clients), the slow-rhythm network. Their last episode is drawn within their
  usual gap of now, and gaps in the last two months stay under 1.15x their rhythm
  (timeline.RECENT_LAPSE), so neither a spurious alert nor a spurious reconnection appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keepwarm.demo import calendar, maildir
from keepwarm.demo.bulk import Bulk
from keepwarm.demo.extras import MALFORMED_REASONS, Extras
from keepwarm.demo.mail import Correspondence, MessageIds
from keepwarm.demo.meetings import plan
from keepwarm.demo.people import build_world
from keepwarm.demo.settings import config_toml
from keepwarm.demo.world import Scenario

__all__ = ["DemoData", "Scenario", "generate"]


@dataclass(frozen=True, slots=True)
class DemoData:
    """What `generate` wrote, and what the pipeline should make of it."""

    maildir: Path  # Maildir++: inbox in cur/, the owner's sent mail in .Sent/cur/
    ics: Path
    owner_addresses: tuple[str, ...]  # personal, new work, old work
    owner_name: str
    config_toml: str  # a complete keepwarm config naming the paths above
    messages: int  # files written, both folders, the broken ones included
    events: int  # meeting instances (series expanded) in the history and the next 8 weeks
    people: int  # distinct people in the world (list posters and strangers included)
    skipped: int  # messages written broken on purpose: the sync must skip them with a reason
    future_events: int  # of `events`, those after `now`
    scenarios: tuple[Scenario, ...]  # per person: the expected status or digest section


def generate(root: Path, *, now: datetime, seed: int = 7) -> DemoData:
    """Write the demo world's Maildir and ICS under `root`. Same (seed, now), same bytes."""
    root.mkdir(parents=True, exist_ok=True)
    mail_root, ics_path = root / "Maildir", root / "calendar.ics"
    if mail_root.exists() and any(mail_root.iterdir()):
        raise FileExistsError(f"{mail_root} already holds mail; generate into an empty directory")
    world = build_world(now, seed)
    ids = MessageIds(seed)
    meetings = plan(world)
    people = Correspondence(world, ids)
    mails = list(people.all())
    mails += people.auto_replies(mails)
    mails += people.holidays()
    mails += Bulk(world, ids).all()
    mails += Extras(world, ids).all(meetings)
    count = maildir.write(mail_root, mails)
    stamp = world.now.replace(microsecond=0)
    cal = calendar.write(ics_path, meetings, owner_name=world.owner.name, stamp=stamp)
    past, future = calendar.count_instances(cal, world.start, world.now)
    return DemoData(
        maildir=mail_root,
        ics=ics_path,
        owner_addresses=world.owner.addresses,
        owner_name=world.owner.name,
        config_toml=config_toml(world, root, mail_root, ics_path),
        messages=count,
        events=past + future,
        people=len(world.contacts),
        skipped=len(MALFORMED_REASONS),
        future_events=future,
        scenarios=world.scenarios,
    )
