"""Who is who, from the command line: merge, vCard import, snooze, ignore, pin, tier and tag.

Each of these is appended to the contact-event log, so each must also survive `rebuild`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.cli_world import ME, NOW, World, ago, world

ALICE = "alice@friends.example"
ALICE_WORK = "al@work.example"  # the same Alice, writing from her job
CAROL = "carol@sub.corp.example"  # wrote twice, never answered: one-way
DAN = "dan@corp.example"


@pytest.fixture
def people(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    w = world(tmp_path, capsys, monkeypatch)
    w.maildir("home")
    w.exchange("Alice Doe", ALICE, [90, 60, 30, 12])
    w.exchange("Alice Doe", ALICE_WORK, [45, 8])
    w.exchange("Dan", DAN, [70, 40, 10])
    for days in (50, 20):
        w.mail(f"Carol <{CAROL}>", ME, ago(days))
    w.write_config()
    w.ok("sync")
    return w


def _contacts(w: World) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in w.ok("contacts", "--format", "json").json()}


def _status(w: World, address: str) -> object:
    return _contacts(w)[address]["status"]


def test_merge_makes_one_person_that_rebuild_keeps(people: World) -> None:
    before = _contacts(people)
    assert before[ALICE]["touchpoints"] == 8
    assert before[ALICE_WORK]["touchpoints"] == 4

    run = people.ok("contacts", "merge", ALICE, ALICE_WORK.upper())
    assert ALICE in run.out
    after = _contacts(people)
    assert ALICE_WORK not in after
    assert sorted(after[ALICE]["addresses"]) == sorted([ALICE, ALICE_WORK])
    assert after[ALICE]["touchpoints"] == 12
    # Either address finds her, and her timeline holds the mail of both.
    shown = people.ok("show", ALICE_WORK, "--format", "json").json()
    assert shown["address"] == ALICE
    assert {t["address"] for t in shown["timeline"]} == {ALICE, ALICE_WORK}

    people.ok("rebuild")
    assert _contacts(people) == after

    # New mail to the second address is counted for the merged person.
    people.mail(ME, ALICE_WORK, ago(1))
    people.ok("sync")
    assert _contacts(people)[ALICE]["touchpoints"] == 13


def test_merge_needs_two_addresses(people: World) -> None:
    for args in ((ALICE,), (ALICE, "@work.example"), (ALICE, "not-an-address")):
        run = people.cli("contacts", "merge", *args)
        assert run.code == 2, args
        assert "Traceback" not in run.err
    # Nothing was recorded by the refused merges.
    assert ALICE_WORK in _contacts(people)


VCARDS = f"""BEGIN:VCARD\r
VERSION:3.0\r
FN:Alice Doe-Smith\r
N:Doe-Smith;Alice;;;\r
EMAIL;TYPE=home:{ALICE}\r
EMAIL;TYPE=work:{ALICE_WORK}\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Carol Jones\r
EMAIL:{CAROL}\r
END:VCARD\r
"""


def test_import_vcards_names_people_and_merges_their_addresses(
    people: World, tmp_path: Path
) -> None:
    cards = tmp_path / "contacts.vcf"
    cards.write_text(VCARDS, encoding="utf-8", newline="")
    run = people.ok("contacts", "import", str(cards))
    assert "2 cards" in run.out
    contacts = _contacts(people)
    assert ALICE_WORK not in contacts
    assert sorted(contacts[ALICE]["addresses"]) == sorted([ALICE, ALICE_WORK])
    assert contacts[ALICE]["name"] == "Alice Doe-Smith"
    assert contacts[ALICE]["touchpoints"] == 12
    assert contacts[CAROL]["name"] == "Carol Jones"
    people.ok("rebuild")
    assert _contacts(people) == contacts


def test_import_of_a_file_without_cards_fails(people: World, tmp_path: Path) -> None:
    empty = tmp_path / "notes.vcf"
    empty.write_text("just some notes, no cards\n", encoding="utf-8")
    run = people.cli("contacts", "import", str(empty))
    assert run.code == 1
    assert "no vCard" in run.err
    missing = people.cli("contacts", "import", str(tmp_path / "nope.vcf"))
    assert missing.code == 2


def test_snooze_mutes_until_the_date_and_unsnooze_ends_it(
    people: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _status(people, DAN) != "muted"
    run = people.ok("snooze", DAN, "30d")
    until = NOW + timedelta(days=30)
    assert f"{until:%Y-%m-%d}" in run.out
    dan = _contacts(people)[DAN]
    assert dan["status"] == "muted"
    assert dan["snoozed_until"] == until.isoformat()
    people.ok("rebuild")
    assert _status(people, DAN) == "muted"

    # A day after the snooze ends, Dan is back.
    monkeypatch.setenv("KEEPWARM_NOW", (until + timedelta(days=1)).isoformat())
    assert _status(people, DAN) != "muted"
    monkeypatch.setenv("KEEPWARM_NOW", NOW.isoformat())

    people.ok("unsnooze", DAN)
    assert _status(people, DAN) != "muted"
    people.ok("rebuild")
    assert _status(people, DAN) != "muted"

    # A date means "until that day begins".
    day = NOW + timedelta(days=10)
    people.ok("snooze", DAN, f"{day:%Y-%m-%d}")
    assert _contacts(people)[DAN]["snoozed_until"] == f"{day:%Y-%m-%d}T00:00:00+00:00"
    bad = people.cli("snooze", DAN, "for-a-while")
    assert bad.code == 2
    assert "for-a-while" in bad.err


def test_ignore_a_domain_mutes_its_subdomains_until_unignored(people: World) -> None:
    people.ok("ignore", "@corp.example")
    contacts = _contacts(people)
    assert contacts[DAN]["status"] == "muted"
    assert contacts[CAROL]["status"] == "muted"  # sub.corp.example is part of corp.example
    assert contacts[ALICE]["status"] != "muted"
    people.ok("rebuild")
    assert _status(people, CAROL) == "muted"
    people.ok("unignore", "@corp.example")
    assert _status(people, DAN) != "muted"


def test_pin_assesses_a_one_way_contact(people: World) -> None:
    assert _status(people, CAROL) == "new"
    people.ok("pin", CAROL)
    carol = _contacts(people)[CAROL]
    assert carol["pinned"] is True
    assert carol["status"] in ("warm", "cooling", "cold")
    people.ok("rebuild")
    assert _contacts(people)[CAROL]["pinned"] is True
    people.ok("unpin", CAROL)
    assert _status(people, CAROL) == "new"


def test_tier_and_tag_show_in_json_and_survive_rebuild(people: World) -> None:
    assert _contacts(people)[DAN]["tier"] == "network"
    people.ok("tier", DAN, "inner")
    people.ok("tag", DAN, "climbing")
    people.ok("tag", "@corp.example", "oldjob")
    dan = _contacts(people)[DAN]
    assert dan["tier"] == "inner"
    assert sorted(dan["tags"]) == ["climbing", "oldjob"]
    assert _contacts(people)[CAROL]["tags"] == ["oldjob"]

    people.ok("tag", DAN, "climbing", "--remove")
    after = _contacts(people)
    assert after[DAN]["tags"] == ["oldjob"]
    # The tier shapes the rhythm, so the state must be what a replay of the log gives.
    people.ok("rebuild")
    assert _contacts(people) == after

    unknown = people.cli("tier", DAN, "bestie")
    assert unknown.code == 2
    assert "inner" in unknown.err  # it says which tiers there are
