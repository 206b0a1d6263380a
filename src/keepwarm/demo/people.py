"""The cast: who Alex Rivera knows, how often they talk, and the scenarios the digest must show.

Every regular contact's last episode is drawn *within* their usual gap of `now`, so the only
people the model can call cooling or cold are the ones a scenario makes quiet on purpose.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from keepwarm.demo.names import NamePool, personal_address, work_address
from keepwarm.demo.world import EMPLOYER, Beat, Contact, Owner, Scenario, Scene, Span, World, frame

OWNER = Owner(
    name="Alex Rivera",
    personal="alex.rivera@post.example",
    old_work="alex.rivera@oldco.example",
    new_work="alex@newco.example",
)
FREE_MAIL = ("post.example", "mailbox.example")  # fictional consumer mail, named in the config
# Drawn addresses stay on fictional domains; only two fixed people use a real provider's domain,
# to exercise the built-in free-mail list.
_POSTER_DOMAINS = (*FREE_MAIL, "uni.example.edu")
CLIENT_ORGS = (
    ("northwind.example", "America/New_York"),
    ("contoso.example", "Europe/London"),
    ("fabrikam.example", "Europe/Berlin"),
    ("tailspin.example", "Europe/London"),
)
FAMILY = (  # name, address, median days between episodes
    ("Maria Rivera", "maria.rivera@post.example", 7.0),
    ("Jorge Rivera", "jorge.rivera@mailbox.example", 10.0),
    ("Lucía Rivera", "luciarivera@gmail.com", 7.0),
    ("Daniel Rivera", "daniel.rivera@post.example", 14.0),
    ("Carmen Ortiz", "carmen.ortiz@mailbox.example", 30.0),
)
# Monthly friends who drifted: silent this many times their 30-day rhythm. Their past is more
# regular than most (spread 0.25), so the learned rhythm is tight enough for ~2x to land in the
# cooling band and 4x well past cold (see the module docstring of keepwarm.demo).
DRIFTERS = (
    ("Wen Li", "wen.li@post.example", 1.85, "cooling"),
    ("Oskar Lund", "oskarlund@gmail.com", 1.95, "cooling"),
    ("Fatima Haddad", "fatima.haddad@mailbox.example", 4.0, "cold"),
    ("Ben Carter", "ben@carterdesign.example", 5.0, "cold"),
    ("Marta Kowalska", "marta.kowalska@post.example", 6.0, "cold"),
)
OWED = ("Priya Natarajan", "priya.natarajan@mailbox.example")
RECONNECTED = ("Tomás Ibarra", "tomas.ibarra@post.example")
SUPPRESSED = ("Hannah Becker", "hannah.becker@lighthouse.example")
OLDCO_MANAGER = ("Graham Pike", "graham.pike@oldco.example")
STAYERS = (
    ("Jordan Blake", "jordan.blake@oldco.example"),
    ("Ruth Okafor", "ruth.okafor@oldco.example"),
)
NEWCO_MANAGER = ("Sana Qureshi", "sana@newco.example")
NETWORK = (  # role, domain (None: personal mail), median days between episodes
    ("accountant", "ledgerwise.example", 90.0),
    ("landlord", "lettings.example", 60.0),
    ("mentor", None, 90.0),
    ("university friend", None, 120.0),
    ("former flatmate", None, 150.0),
    ("neighbour", None, 45.0),
    ("recruiter", "talentbridge.example", 180.0),
    ("coach", "runclub.example", 75.0),
)
STRANGER_DOMAINS = (
    "growthly.example", "leadforge.example", "saasbridge.example", "pitchdeck.example",
    "outbound.example", "hiresmart.example",
)  # fmt: skip
_DAY = timedelta(days=1)
COUNTS = {"close": 6, "friend": 38, "oldco": 9, "newco": 17, "stranger": 18, "poster": 24}


def build_world(now: datetime, seed: int) -> World:
    """The whole cast for (`now`, `seed`), with each contact's spans and scripted scenes."""
    now, start, move, vacations = frame(now)
    cast = _Cast(now, start, move, random.Random(f"{seed}:cast"))
    people = cast.private() + _scenario_people(now, start) + cast.colleagues() + cast.outside()
    contacts = tuple(people)
    return World(now, start, move, vacations, OWNER, contacts, _scenarios(contacts), seed)


class _Cast:
    """Draws names, addresses and rhythms group by group from one random stream."""

    def __init__(self, now: datetime, start: datetime, move: datetime, rng: random.Random) -> None:
        self.now, self.start, self.move, self.rng = now, start, move, rng
        fixed = {n for n, *_ in (*FAMILY, *DRIFTERS, OWED, RECONNECTED, SUPPRESSED, *STAYERS)}
        fixed |= {OLDCO_MANAGER[0], NEWCO_MANAGER[0], OWNER.name}
        taken = {a for _, a, *_ in (*FAMILY, *DRIFTERS, OWED, RECONNECTED, SUPPRESSED, *STAYERS)}
        taken |= {OLDCO_MANAGER[1], NEWCO_MANAGER[1], *OWNER.addresses}
        self.pool = NamePool(rng, fixed, taken)

    def recent(self, cadence: float) -> datetime:
        """A last episode within the usual gap of now: a warm contact by construction."""
        return self.now - self.rng.uniform(0.15, 0.85) * cadence * _DAY

    def span(self, cadence: float, sigma: float, last: datetime, owner: str, *, work: bool,
             begin: datetime | None = None) -> Span:  # fmt: skip
        return Span(begin or self.start, last, cadence, sigma, owner, work)

    def private(self) -> list[Contact]:
        out = []
        for name, address, cadence in FAMILY:
            spans = (self.span(cadence, 0.5, self.recent(cadence), OWNER.personal, work=False),)
            out.append(Contact(name, address, "family", spans=spans))
        for group, low, high, share in (("close", 9, 15, 0.5), ("friend", 24, 45, 0.45)):
            for _ in range(COUNTS[group]):
                first, last = self.pool.draw()
                cadence = self.rng.uniform(low, high)
                last_at = self.recent(cadence)
                spans = (self.span(cadence, 0.5, last_at, OWNER.personal, work=False),)
                address = self.pool.claim(personal_address(self.rng, first, last, FREE_MAIL))
                person = Contact(f"{first} {last}", address, group, spans=spans, out_share=share)
                out.append(person)
        for name, address, times, _ in DRIFTERS:
            quiet = self.span(30, 0.25, self.now - times * 30 * _DAY, OWNER.personal, work=False)
            out.append(Contact(name, address, "drift", spans=(quiet,)))
        return out

    def colleagues(self) -> list[Contact]:
        """oldco weekly until the week before the move (two stay in touch); newco since."""
        out = []
        for name, address in (OLDCO_MANAGER, *STAYERS, *self.staff("oldco", 0)):
            cadence = self.rng.uniform(6, 9)
            last_day = self.move - self.rng.uniform(3, 8) * _DAY
            spans: tuple[Span, ...] = (
                self.span(cadence, 0.45, last_day, OWNER.old_work, work=True),
            )
            group = "oldco"
            if (name, address) in STAYERS:
                group = "oldco_stayer"
                begin = self.move + 7 * _DAY
                # About as often as before, so keeping in touch does not read as drifting.
                last_at = self.recent(8)
                spans += (self.span(8, 0.35, last_at, OWNER.personal, work=False, begin=begin),)
            out.append(Contact(name, address, group, org="oldco.example", spans=spans))
        for name, address in (NEWCO_MANAGER, *self.staff("newco", 1)):
            cadence = self.rng.choice((6.0, 7.0, 8.0, 10.0))
            last_at = self.recent(cadence)
            spans = (self.span(cadence, 0.45, last_at, OWNER.new_work, work=True, begin=self.move),)
            out.append(Contact(name, address, "newco", org="newco.example", spans=spans))
        return out

    def outside(self) -> list[Contact]:
        """Clients, the slow-rhythm network, strangers and mailing-list posters."""
        out = []
        for style, (domain, tz) in enumerate(CLIENT_ORGS):
            for i in range(4):
                first, last = self.pool.draw()
                cadence = 90.0 if i == 0 else self.rng.uniform(110, 180)
                spans = (self.span(cadence, 0.3, self.recent(cadence), EMPLOYER, work=True),)
                address = self.pool.claim(work_address(first, last, domain, style))
                out.append(Contact(f"{first} {last}", address, "client", domain, tz, spans))
        for _role, org, cadence in NETWORK:
            first, last = self.pool.draw()
            address = self.pool.claim(
                work_address(first, last, org, 0) if org
                else personal_address(self.rng, first, last, FREE_MAIL)
            )  # fmt: skip
            last_at = self.recent(cadence)
            spans = (self.span(cadence, 0.45, last_at, OWNER.personal, work=org is not None),)
            out.append(Contact(f"{first} {last}", address, "network", org, spans=spans))
        for i in range(COUNTS["stranger"]):
            first, last = self.pool.draw()
            domain = STRANGER_DOMAINS[i % len(STRANGER_DOMAINS)]
            address = self.pool.claim(work_address(first, last, domain, i))
            out.append(Contact(f"{first} {last}", address, "stranger"))
        for _ in range(COUNTS["poster"]):
            first, last = self.pool.draw()
            address = self.pool.claim(personal_address(self.rng, first, last, _POSTER_DOMAINS))
            out.append(Contact(f"{first} {last}", address, "poster"))
        return out

    def staff(self, company: str, style: int) -> list[tuple[str, str]]:
        names = [self.pool.draw() for _ in range(COUNTS[company])]
        domain = f"{company}.example"
        return [
            (f"{f} {la}", self.pool.claim(work_address(f, la, domain, style))) for f, la in names
        ]


def _scenario_people(now: datetime, start: datetime) -> list[Contact]:
    days = _DAY
    owed_span = Span(start, now - 33 * days, 30, 0.5, OWNER.personal, work=False)
    owed_scene = Scene(
        "Visiting London next month, are you around?",
        OWNER.personal,
        (Beat(now - 5 * days, outbound=False),),
    )
    back_span = Span(start, now - 215 * days, 30, 0.5, OWNER.personal, work=False)
    back_scene = Scene(
        "Long time! Coffee soon?",
        OWNER.personal,
        (
            Beat(now - 12 * days, outbound=True),
            Beat(now - 10.6 * days, outbound=False),
            Beat(now - 10.5 * days, outbound=True),
        ),
    )
    quiet_span = Span(start, now - 150 * days, 28, 0.5, OWNER.personal, work=True)
    return [
        Contact(*OWED, "owed", spans=(owed_span,), scenes=(owed_scene,)),
        Contact(*RECONNECTED, "reconnected", spans=(back_span,), scenes=(back_scene,)),
        Contact(*SUPPRESSED, "suppressed", org="lighthouse.example", spans=(quiet_span,)),
    ]


_EXPECT = {
    "family": ("warm", "inner tier (config rule), weekly-ish, last touch within the usual gap"),
    "close": ("warm", "inner tier, every ~2 weeks, last touch within the usual gap"),
    "friend": ("warm", "monthly, last touch within the usual gap"),
    "oldco": ("cold", "weekly at oldco, silent since the move ~5 months ago"),
    "oldco_stayer": ("warm", "ex-colleague who kept writing to the personal address"),
    "newco": ("warm", "weekly since the move (close tier via @newco.example)"),
    "client": ("warm", "quarterly reviews, last within the usual gap (tag clients)"),
    "network": ("warm", "a slow rhythm (45-180 days), last touch within it"),
    "stranger": ("new", "one-way cold outreach, never answered"),
    "poster": ("absent", "writes only to a mailing list: filtered, never a contact"),
    "owed": ("owed_reply", "wrote 4-5 days ago, no answer (reply_days = 3); otherwise warm"),
    "reconnected": ("reconnected", "7 months silent, owner wrote 12 days ago, reply in 1.4 days"),
    "suppressed": ("suppressed", "5x overdue (cold), but a meeting with them is 7-13 days ahead"),
}


def _scenarios(contacts: tuple[Contact, ...]) -> tuple[Scenario, ...]:
    drift = {address: (times, expect) for _, address, times, expect in DRIFTERS}
    out = []
    for c in contacts:
        if c.address in drift:
            times, expect = drift[c.address]
            why = f"monthly until {times:g}x that long ago"
        else:
            expect, why = _EXPECT[c.group]
        out.append(Scenario(c.address, c.name, expect, why))
    return tuple(out)
