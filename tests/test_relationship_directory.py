"""Who is who: merges from aliases, vCards and events; rules by address or @domain; replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keepwarm.config.schema import ContactsConfig, ModelConfig
from keepwarm.model import ContactEvent
from keepwarm.relationship.directory import Directory

MODEL = ModelConfig()
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def event(action: str, subject: str, value: str | None = None, minute: int = 0) -> ContactEvent:
    return ContactEvent(action, subject, value, T0 + timedelta(minutes=minute))


def build(
    contacts: ContactsConfig | None = None,
    events: list[ContactEvent] | None = None,
    people: list[tuple[str | None, tuple[str, ...]]] | None = None,
) -> Directory:
    return Directory.build(contacts or ContactsConfig(), MODEL, events or [], people or [])


def test_unknown_addresses_are_their_own_contact() -> None:
    d = build()
    assert d.key("Bob@Example.org") == "bob@example.org"
    assert d.addresses("bob@example.org") == ("bob@example.org",)
    assert d.tier("bob@example.org") == "network"
    assert d.tags("bob@example.org") == ()
    assert not d.pinned("bob@example.org")
    assert not d.ignored("bob@example.org")
    assert d.snoozed_until("bob@example.org") is None
    assert d.name("bob@example.org") is None


def test_config_alias_merges_with_its_first_address_as_primary() -> None:
    d = build(ContactsConfig(aliases=(("bob@work.example", "Bob@Home.example", "b@x.example"),)))
    assert d.key("bob@home.example") == "bob@work.example"
    assert d.key("b@x.example") == "bob@work.example"
    assert d.addresses("b@x.example") == ("bob@work.example", "b@x.example", "bob@home.example")
    assert d.keys() == ("bob@work.example",)


def test_gmail_variants_are_one_address() -> None:
    d = build(ContactsConfig(aliases=(("bob@work.example", "Bob.Smith+news@googlemail.com"),)))
    assert d.key("bobsmith@gmail.com") == "bob@work.example"


def test_merge_event_target_is_primary_and_beats_config() -> None:
    aliases = ContactsConfig(aliases=(("bob@work.example", "bob@home.example"),))
    d = build(aliases, [event("merge", "bob@new.example", "bob@home.example")])
    assert d.key("bob@work.example") == "bob@new.example"
    assert set(d.addresses("bob@new.example")) == {
        "bob@new.example", "bob@work.example", "bob@home.example",
    }  # fmt: skip
    # The latest merge names the primary.
    d2 = build(
        aliases,
        [
            event("merge", "bob@new.example", "bob@home.example", 1),
            event("merge", "bob@work.example", "bob@new.example", 2),
        ],
    )
    assert d2.key("bob@new.example") == "bob@work.example"


def test_vcard_people_merge_and_name_but_config_primary_wins() -> None:
    people: list[tuple[str | None, tuple[str, ...]]] = [
        ("Carol Danvers", ("carol@home.example", "carol@work.example")),
        ("Dan", ("dan@example.org",)),
    ]
    d = build(ContactsConfig(aliases=(("carol@work.example", "cd@other.example"),)), people=people)
    assert d.key("carol@home.example") == "carol@work.example"
    assert d.key("cd@other.example") == "carol@work.example"
    assert d.name("carol@home.example") == "Carol Danvers"
    assert d.name("dan@example.org") == "Dan"
    only_vcard = build(people=people)
    assert only_vcard.key("carol@work.example") == "carol@home.example"


def test_name_event_beats_the_vcard_and_can_be_cleared() -> None:
    people: list[tuple[str | None, tuple[str, ...]]] = [("Carol", ("carol@home.example",))]
    named = build(events=[event("name", "carol@home.example", "Carol D.")], people=people)
    assert named.name("carol@home.example") == "Carol D."
    cleared = build(
        events=[
            event("name", "carol@home.example", "Carol D."),
            event("name", "carol@home.example"),
        ],
        people=people,
    )
    assert cleared.name("carol@home.example") == "Carol"


def test_domain_rules_cover_subdomains_and_the_most_specific_tier_wins() -> None:
    contacts = ContactsConfig(
        tiers={
            "close": ("@example.org",),
            "inner": ("@family.example.org", "ann@example.org"),
            "bogus": ("@bogus.example",),
        },
        tags={"work": ("@example.org",), "family": ("@family.example.org",)},
        ignore=("@spam.example",),
        pin=("zed@elsewhere.example",),
    )
    d = build(contacts)
    assert d.tier("bob@mail.example.org") == "close"
    assert d.tier("mum@family.example.org") == "inner"
    assert d.tier("ann@example.org") == "inner"
    assert d.tier("x@notexample.org") == "network"  # "example.org" is not a suffix of it
    assert d.tier("x@bogus.example") == "network"  # unknown tier names fall back
    assert d.tags("mum@family.example.org") == ("family", "work")
    assert d.ignored("a@news.spam.example")
    assert not d.ignored("a@notspam.example")
    assert d.pinned("zed@elsewhere.example")


def test_a_rule_on_any_address_of_a_merged_contact_applies() -> None:
    contacts = ContactsConfig(
        aliases=(("bob@gmail.com", "bob@acme.example"),), tiers={"close": ("@acme.example",)}
    )
    assert build(contacts).tier("bob@gmail.com") == "close"


def test_events_replay_in_order_over_config() -> None:
    contacts = ContactsConfig(pin=("@example.org",), tags={"work": ("@example.org",)})
    events = [
        event("unpin", "bob@example.org", minute=1),
        event("ignore", "@example.org", minute=2),
        event("unignore", "bob@example.org", minute=3),
        event("tag", "bob@example.org", "friends", minute=4),
        event("untag", "bob@example.org", "work", minute=5),
        event("tier", "bob@example.org", "inner", minute=6),
        event("tier", "bob@example.org", "no-such-tier", minute=7),
        event("tier", "ann@example.org", "close", minute=8),
    ]
    d = build(contacts, events)
    assert not d.pinned("bob@example.org")
    assert d.pinned("ann@example.org")
    assert not d.ignored("bob@example.org")
    assert d.ignored("ann@example.org")
    assert d.tags("bob@example.org") == ("friends",)
    assert d.tags("ann@example.org") == ("work",)
    assert d.tier("bob@example.org") == "network"  # the unknown tier falls back to the default
    assert d.tier("ann@example.org") == "close"
    again = build(contacts, [*events, event("ignore", "@example.org", minute=9)])
    assert again.ignored("bob@example.org")
    all_tags_gone = build(contacts, [event("untag", "ann@example.org")])
    assert all_tags_gone.tags("ann@example.org") == ()


def test_snooze_and_unsnooze() -> None:
    until = datetime(2024, 6, 1, 12, tzinfo=UTC)
    d = build(events=[event("snooze", "bob@example.org", until.isoformat())])
    assert d.snoozed_until("bob@example.org") == until
    dated = build(events=[event("snooze", "bob@example.org", "2024-06-01")])
    assert dated.snoozed_until("bob@example.org") == datetime(2024, 6, 1, tzinfo=UTC)
    ended = build(
        events=[
            event("snooze", "bob@example.org", until.isoformat(), 1),
            event("unsnooze", "bob@example.org", None, 2),
        ]
    )
    assert ended.snoozed_until("bob@example.org") is None
    garbage = build(events=[event("snooze", "bob@example.org", "next tuesday")])
    assert garbage.snoozed_until("bob@example.org") is None


def test_events_on_an_alias_apply_to_the_contact() -> None:
    contacts = ContactsConfig(aliases=(("bob@work.example", "bob@home.example"),))
    d = build(contacts, [event("pin", "bob@home.example")])
    assert d.pinned("bob@work.example")
    assert d.facts("bob@home.example") == d.facts("bob@work.example")


def test_addresses_of_interest_groups_changed_counterparts_by_contact() -> None:
    d = build(ContactsConfig(aliases=(("bob@work.example", "bob@home.example"),)))
    found = d.addresses_of_interest(["bob@home.example", "ann@example.org", "bob@work.example"])
    assert found == {
        "bob@work.example": ("bob@work.example", "bob@home.example"),
        "ann@example.org": ("ann@example.org",),
    }
