"""The demo generator writes a valid, deterministic, realistic Maildir, ICS file and config.

Only the data is checked here; what the pipeline makes of it is the integration's business
(see the keepwarm.demo module docstring for the expected digest).
"""

from __future__ import annotations

import mailbox
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

import pytest

from keepwarm.config.load import load
from keepwarm.demo import DemoData, generate

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
_HEADERS = BytesHeaderParser()
_REPLY_PREFIXES = ("Re: ", "Automatic reply: ", "Accepted: ", "Declined: ")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("demo"), now=NOW)


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: relative path -> (content, mtime in whole seconds)."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), int(path.stat().st_mtime))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Mail:
    folder: str  # inbox | sent
    headers: Message
    date: datetime | None  # None when missing or unreadable
    people: frozenset[str]  # From, To and Cc addresses, lower case


@pytest.fixture(scope="module")
def mails(demo: DemoData) -> list[Mail]:
    """Every message file of the demo, headers parsed once for all tests."""
    out = []
    for folder, cur in (("inbox", demo.maildir / "cur"), ("sent", demo.maildir / ".Sent" / "cur")):
        for path in sorted(cur.iterdir()):
            headers = _HEADERS.parsebytes(path.read_bytes())
            fields = [str(v) for name in ("From", "To", "Cc") for v in headers.get_all(name, [])]
            people = frozenset(a.lower() for _, a in getaddresses(fields) if a)
            out.append(Mail(folder, headers, _date(headers), people))
    return out


def _from(mail: Mail) -> set[str]:
    return {a.lower() for _, a in getaddresses([str(mail.headers["From"] or "")]) if "@" in a}


def _date(headers: Message) -> datetime | None:
    value = headers.get("Date")
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def test_same_seed_and_now_give_identical_files(demo: DemoData, tmp_path: Path) -> None:
    again = generate(tmp_path, now=NOW)
    first_root = demo.maildir.parent
    # Names, bytes and mtimes: the whole tree is a function of (seed, now).
    assert _files(tmp_path) == _files(first_root)
    assert (again.messages, again.events, again.people) == (demo.messages, demo.events, demo.people)
    assert again.scenarios == demo.scenarios
    assert again.config_toml.replace(str(tmp_path), "ROOT") == demo.config_toml.replace(
        str(first_root), "ROOT"
    )


def test_another_seed_gives_another_world(demo: DemoData, tmp_path: Path) -> None:
    other = generate(tmp_path, now=NOW, seed=8)
    assert other.owner_addresses == demo.owner_addresses
    assert (tmp_path / "calendar.ics").read_bytes() != demo.ics.read_bytes()
    assert {s.address for s in other.scenarios} != {s.address for s in demo.scenarios}


def test_config_parses_and_names_existing_paths(demo: DemoData, tmp_path: Path) -> None:
    parsed = tomllib.loads(demo.config_toml)
    assert tuple(parsed["owner"]["addresses"]) == demo.owner_addresses
    accounts = {a["name"]: a for a in parsed["accounts"]}
    assert accounts["mail"]["kind"] == "maildir"
    assert Path(accounts["mail"]["path"]) == demo.maildir.resolve()
    assert accounts["calendar"]["kind"] == "ics"
    assert Path(accounts["calendar"]["path"]) == demo.ics.resolve()
    assert demo.ics.is_file()
    db = Path(parsed["store"]["url"].removeprefix("sqlite:///"))
    assert db.parent == demo.maildir.parent.resolve()
    assert parsed["digest"]["to"] in demo.owner_addresses
    assert parsed["digest"]["timezone"] == "Europe/London"
    assert parsed["detect"]["keep_subjects"] is True
    assert set(parsed["contacts"]["tiers"]) == {"inner", "close"}
    assert parsed["contacts"]["tags"]["clients"]
    # The real loader accepts it as a whole, rules and all.
    path = tmp_path / "keepwarm.toml"
    path.write_text(demo.config_toml, encoding="utf-8")
    config = load(path)
    assert config.owner.name == demo.owner_name
    assert [a.kind for a in config.accounts] == ["maildir", "ics"]


def test_maildir_is_a_valid_maildir_with_inbox_and_sent(demo: DemoData) -> None:
    box = mailbox.Maildir(demo.maildir, factory=None, create=False)
    assert box.list_folders() == ["Sent"]
    inbox_count, sent_count = len(box), len(box.get_folder("Sent"))
    assert inbox_count > 1000
    assert sent_count > 1000
    assert inbox_count + sent_count == demo.messages
    for name in sorted(os.listdir(demo.maildir / "cur"))[:50]:
        ts, _, rest = name.partition(".")
        assert rest.startswith("M")
        assert ":2," in rest
        assert int((demo.maildir / "cur" / name).stat().st_mtime) == int(ts)


def test_every_message_has_headers_except_the_deliberately_broken(
    demo: DemoData, mails: list[Mail]
) -> None:
    broken = 0
    for mail in mails:
        if mail.date is None or not _from(mail):
            broken += 1
            continue
        assert mail.headers["Message-ID"]
        assert mail.headers["To"]
        assert mail.headers["Subject"] is not None
        assert mail.date.tzinfo is not None
    assert broken == demo.skipped == 4


def test_sent_mail_is_the_owners_and_nothing_is_in_the_future(
    demo: DemoData, mails: list[Mail]
) -> None:
    for mail in mails:
        assert mail.date is None or mail.date <= NOW
        if mail.folder == "sent":
            assert _from(mail) <= set(demo.owner_addresses)


def test_replies_are_threaded_to_messages_in_the_mailbox(mails: list[Mail]) -> None:
    ids = {str(m.headers["Message-ID"]).strip() for m in mails if m.headers["Message-ID"]}
    replies = [m for m in mails if m.headers["In-Reply-To"]]
    assert len(replies) > 2000
    for mail in replies:
        assert str(mail.headers["In-Reply-To"]).strip() in ids
        assert str(mail.headers["Subject"]).startswith(_REPLY_PREFIXES)


def test_mailbox_holds_the_automated_and_odd_kinds(demo: DemoData, mails: list[Mail]) -> None:
    owner = set(demo.owner_addresses)
    kinds: dict[str, Callable[[Mail], bool]] = {
        "newsletter": lambda m: bool(m.headers["List-Id"] and m.headers["List-Unsubscribe"]),
        "mailing list": lambda m: m.headers["Precedence"] == "list",
        "auto-reply": lambda m: m.headers["Auto-Submitted"] == "auto-replied",
        "invitation": lambda m: str(m.headers["Content-Type"]).startswith("text/calendar"),
        "crowd": lambda m: len(m.people) > 11,
        "note to self": lambda m: len(m.people) == 1 and m.people <= owner,
        "no-reply": lambda m: any("reply@" in p for p in _from(m)),
    }
    for kind, test in kinds.items():
        assert any(test(m) for m in mails), kind
    # The owner's own out-of-office answers sit in Sent, as auto-replies.
    assert any(kinds["auto-reply"](m) for m in mails if m.folder == "sent")


def test_job_change_is_visible_in_the_mail(demo: DemoData, mails: list[Mail]) -> None:
    """oldco traffic stops about five months ago (but for two who keep in touch); newco starts."""
    owner = set(demo.owner_addresses)
    old_address = demo.owner_addresses[2]
    stayers = {"jordan.blake@oldco.example", "ruth.okafor@oldco.example"}
    oldco, stay, newco = [], [], []
    for mail in mails:
        if mail.date is None or len(mail.people) > 10:
            continue
        others = mail.people - owner
        if any(p.endswith("@oldco.example") for p in others - stayers):
            oldco.append(mail.date)
        if others & stayers:
            stay.append(mail.date)
        if any(p.endswith("@newco.example") for p in others):
            newco.append(mail.date)
            assert old_address not in mail.people
        if mail.date > NOW - timedelta(days=140):
            assert old_address not in mail.people
    assert NOW - timedelta(days=200) < max(oldco) < NOW - timedelta(days=145)
    assert min(oldco) < NOW - timedelta(days=700)
    assert NOW - timedelta(days=165) < min(newco) < NOW - timedelta(days=140)
    assert max(newco) > NOW - timedelta(days=7)
    assert max(stay) > NOW - timedelta(days=14)
    assert len(newco) > 500


def test_counts_are_in_range(demo: DemoData) -> None:
    assert 5_000 <= demo.messages <= 20_000
    assert 150 <= demo.events <= 1_000
    assert 5 <= demo.future_events < demo.events
    assert 130 <= demo.people <= 180
    assert demo.owner_name == "Alex Rivera"


def test_scenario_people_appear_in_the_mailbox(demo: DemoData, mails: list[Mail]) -> None:
    everyone = set().union(*(m.people for m in mails))
    expected = {s.expect for s in demo.scenarios}
    assert {"owed_reply", "reconnected", "suppressed", "cooling", "cold", "new"} <= expected
    for scenario in demo.scenarios:
        if scenario.expect != "absent":
            assert scenario.address in everyone, scenario


def test_refuses_to_write_over_an_existing_maildir(demo: DemoData) -> None:
    with pytest.raises(FileExistsError):
        generate(demo.maildir.parent, now=NOW)


def test_needs_a_timezone_aware_now(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(tmp_path, now=datetime(2025, 6, 2, 9, 30))
