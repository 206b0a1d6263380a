"""The rendered digest as its reader sees it: terminal text, mail HTML and the JSON document."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from keepwarm.config.schema import DIGEST_SECTIONS, DigestConfig
from keepwarm.digest.compose import AccountHealth, Digest, compose
from keepwarm.digest.render import render_html, render_json, render_text
from keepwarm.relationship.state import Assessment, Circle, ContactState
from keepwarm.store.status import RECONNECTED, StatusChange

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
_STATE_FIELDS = {f.name for f in fields(ContactState)} - {"key", "addresses"}
NASTY = "<script>alert(1)</script> O'Brien & Co"


def person(key: str, status: str = "cold", **values: Any) -> Assessment:
    state_values = {k: values.pop(k) for k in list(values) if k in _STATE_FIELDS}
    state_values.setdefault("last_touch", datetime(2026, 9, 21, 10, tzinfo=UTC))
    state_values.setdefault("last_kind", "email")
    state = ContactState(key=key, addresses=(key,), **state_values)
    base: dict[str, Any] = {
        "tier": "close",
        "warmth": 0.5,
        "warmth_lost": 1.5,
        "silence_days": 63.0,
        "typical_gap_days": 21.0,
        "survival": 0.02,
        "overdue": 3.0,
        # The form relationship.assess writes: rhythm, then the rarity after a dash.
        "reasons": ("usually every ~3 weeks; 9 weeks now — a gap this long happens 1 time in 40",),
    }
    base.update(values)
    return Assessment(state=state, now=NOW, status=status, **base)


def full_digest(config: DigestConfig | None = None) -> Digest:
    """A week with something in every section, and a name written to break HTML."""
    people = [
        person(
            "ana@oldco.example",
            name="Ana Silva",
            organisation="oldco.example",
            last_subject="Re: lunch next week?",
            monthly={"2026-01": 3, "2026-05": 5, "2026-09": 1},
            pinned=True,  # pinned: listed on her own line beside her quiet circle
        ),
        person(
            "bob@obrien.example",
            name=NASTY,
            organisation="O'Brien & Co",
            status="cooling",
            last_subject="<b>Q3</b> & more",
            owed_reply_since=datetime(2026, 11, 3, 9, tzinfo=UTC),
        ),
        person("dee@y.example", name="Dee", status="warm", reconnected_at=NOW - timedelta(days=2)),
        person("eve@z.example", name="Eve", next_meeting=NOW + timedelta(days=5)),
    ]
    circle = Circle(
        "oldco.example",
        "organisation",
        ("ana@oldco.example", "x@oldco.example", "y@oldco.example"),
        ("ana@oldco.example", "x@oldco.example"),
        2 / 3,
        datetime(2026, 3, 10, tzinfo=UTC),
    )
    account = AccountHealth(
        "work",
        "imap",
        error_kind="auth",
        error="authentication failed: invalid credentials",
        fix="keepwarm auth work",
        last_sync=NOW - timedelta(days=3),
    )
    return compose(
        people,
        now=NOW,
        config=config or DigestConfig(subjects=True),
        circles=[circle],
        accounts=[account],
        owner_name="Sam",
    )


def news_digest() -> Digest:
    """Ana turned cold on Thursday and Dee answered a reach-out: both recorded this week."""
    return compose(
        [
            person("ana@x.example", name="Ana"),
            person("old@x.example", name="Olde", warmth_lost=9.0),
            person("dee@y.example", name="Dee", status="warm", reconnected_at=NOW - timedelta(2)),
        ],
        now=NOW,
        config=DigestConfig(),
        changes=[
            StatusChange("ana@x.example", NOW - timedelta(days=4), "cooling", "cold"),
            StatusChange("dee@y.example", NOW - timedelta(days=1), "warm", RECONNECTED),
        ],
        news_since=NOW - timedelta(days=7),
    )


def empty_digest() -> Digest:
    return compose([person("w@x.example", status="warm")], now=NOW, config=DigestConfig())


# --- text -----------------------------------------------------------------------------------


def test_text_fits_an_80_column_terminal() -> None:
    text = render_text(full_digest())
    assert max(len(line) for line in text.splitlines()) <= 80


def test_text_shows_each_contact_as_a_reader_needs_it() -> None:
    text = render_text(full_digest())
    assert "Hi Sam, 2 people going cold, 1 reply owed" in text
    assert " 1. Ana Silva <ana@oldco.example> · oldco.example" in text
    assert "cold · usually every ~3 weeks; 9 weeks now" in text
    assert "▁▆▁▁▁█▁▁▁▃▁▁  last touch 21 Sep, email: “Re: lunch next week?”" in text
    assert "Why: a gap this long happens 1 time in 40" in text
    assert "→ Ask how things are at oldco.example" in text
    assert "keepwarm snooze ana@oldco.example 30d  ·  keepwarm ignore ana@oldco.example" in text
    assert "Their message of 3 Nov has waited 3 weeks." in text
    assert "They answered on 21 Nov." in text
    assert "You meet on 28 Nov." in text
    assert "2 of 3 people at oldco.example went quiet since March" in text
    assert "Bars: contact per month, Dec 2025 to Nov 2026." in text


def test_text_marks_what_changed_since_the_last_digest() -> None:
    text = render_text(news_digest())
    assert "Hi, 2 people going cold (1 new), 1 reconnected (1 new)." in text
    assert (
        " 1. Ana <ana@x.example>\n"
        "    newly cold since 19 Nov · usually every ~3 weeks; 9 weeks now\n"
    ) in text
    assert " 2. Olde <old@x.example>\n    cold · usually every ~3 weeks; 9 weeks now\n" in text
    assert "    warm, newly reconnected · usually every ~3 weeks; 9 weeks now\n" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_text_is_not_html_escaped() -> None:
    text = render_text(full_digest())
    assert NASTY in text
    assert "&amp;" not in text
    assert "&#39;" not in text


def test_text_sync_health_gives_the_exact_fix() -> None:
    text = render_text(full_digest())
    assert " • work (imap): authentication failed: invalid credentials" in text
    assert "   last synced 20 Nov 08:00\n   Fix: keepwarm auth work\n" in text


def test_text_hides_subjects_unless_configured() -> None:
    text = render_text(full_digest(DigestConfig(subjects=False)))
    assert "lunch next week" not in text
    assert "last touch 21 Sep, email\n" in text


def test_text_leaves_out_empty_and_disabled_sections() -> None:
    text = render_text(full_digest(DigestConfig(sections=("going_cold", "upcoming"))))
    assert "GOING COLD" in text
    assert "COMING UP" in text
    assert "REPLIES YOU OWE" not in text
    assert "ACCOUNTS THAT NEED YOU" not in text


def test_text_mentions_people_left_out_by_max_items() -> None:
    people = [person(f"p{i}@x.example", warmth_lost=float(i + 1)) for i in range(4)]
    text = render_text(compose(people, now=NOW, config=DigestConfig(max_items=2)))
    assert "p3@x.example" in text
    assert "p0@x.example" not in text
    assert "…and 2 more going cold." in text


def test_text_of_an_empty_week_is_the_one_line() -> None:
    text = render_text(empty_digest())
    body = text.split("\n-- \n")[0]
    assert body.strip().splitlines() == [
        "keepwarm · week 2026-W48",
        "",
        "All warm this week: nobody is going cold.",
    ]


def test_commands_too_long_for_one_line_go_on_two_but_are_never_broken() -> None:
    long = "a.very.long.local.part.indeed@subdomain.organisation-example.co.uk"
    text = render_text(compose([person(long)], now=NOW, config=DigestConfig()))
    assert f"    keepwarm snooze {long} 30d\n    keepwarm ignore {long}\n" in text


# --- HTML -----------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects tags, checks they nest, and records anything that would fetch a resource."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.fetches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.fetches += [v or "" for k, v in attrs if k in ("src", "href", "background")]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def parse(html: str) -> _Tags:
    tags = _Tags()
    tags.feed(html)
    tags.close()
    return tags


def test_html_escapes_names_subjects_and_organisations() -> None:
    html = render_html(full_digest())
    assert "<script>" not in html
    assert "<b>Q3</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; O&#39;Brien &amp; Co" in html
    assert "&lt;b&gt;Q3&lt;/b&gt; &amp; more" in html
    assert "script" not in parse(html).seen


def test_html_is_self_contained_inline_css_tables() -> None:
    html = render_html(full_digest())
    tags = parse(html)
    assert tags.errors == []
    assert tags.open == []
    assert "style" not in tags.seen
    assert "link" not in tags.seen
    assert tags.fetches == []  # nothing for a mail client to block or fetch
    assert "http://" not in html
    assert "https://" not in html
    assert 'name="viewport"' in html
    assert "max-width:600px" in html


def test_html_shows_the_same_content_as_the_text() -> None:
    html = render_html(full_digest())
    for expected in (
        "Hi Sam, 2 people going cold, 1 reply owed",
        "Ana Silva",
        "usually every ~3 weeks; 9 weeks now",
        "Reply to their message from 3 Nov",
        "keepwarm snooze ana@oldco.example 30d",
        "keepwarm ignore ana@oldco.example",
        "2 of 3 people at oldco.example went quiet since March",
        "keepwarm auth work",
        "last synced 20 Nov 08:00",
    ):
        assert expected in html, expected
    # One bar per month, each labelled with its month and count.
    assert html.count('title="2026-05: 5"') == 1
    assert html.count('title="2025-12: ') == 5  # one sparkline per contact line (of 5)


def test_html_marks_what_changed_since_the_last_digest() -> None:
    html = render_html(news_digest())
    assert parse(html).errors == []
    assert html.count(">new</span>") == 2  # Ana and Dee, not Olde
    assert "newly cold since 19 Nov · usually every ~3 weeks; 9 weeks now" in html
    assert "warm, newly reconnected · usually" in html
    assert html.count(" · usually every") == 2  # an unchanged status is the badge alone


def test_html_of_an_empty_week() -> None:
    html = render_html(empty_digest())
    assert "All warm this week: nobody is going cold." in html
    assert "<h2" not in html


# --- JSON -----------------------------------------------------------------------------------

CONTACT_FIELDS = {
    "key", "address", "name", "organisation", "status", "rhythm", "last_touch", "last_kind",
    "subject", "sparkline", "suggestion", "detail", "reasons", "commands", "score",
    "status_text", "news", "changed_at", "previous_status",
}  # fmt: skip


def test_json_document_fields() -> None:
    doc = json.loads(render_json(full_digest()))
    assert doc["version"] == 1
    assert doc["period"] == "2026-W48"
    assert doc["generated_at"] == "2026-11-23T08:00:00+00:00"
    assert doc["empty"] is False
    assert list(doc["sections"]) == list(DIGEST_SECTIONS)
    assert doc["months"][0] == "2025-12"
    assert doc["months"][-1] == "2026-11"

    ana = doc["sections"]["going_cold"][0]
    assert set(ana) == CONTACT_FIELDS
    assert ana["address"] == "ana@oldco.example"
    assert ana["name"] == "Ana Silva"
    assert ana["status"] == "cold"
    assert ana["last_touch"] == "2026-09-21T10:00:00+00:00"
    assert ana["subject"] == "Re: lunch next week?"
    assert ana["sparkline"] == [0, 3, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0]
    assert ana["commands"] == {
        "snooze": "keepwarm snooze ana@oldco.example 30d",
        "ignore": "keepwarm ignore ana@oldco.example",
    }
    assert ana["score"] == 4.5

    owed = doc["sections"]["owed_replies"][0]
    assert owed["name"] == NASTY  # JSON carries names verbatim; escaping is the reader's job
    assert owed["suggestion"] == "Reply to their message from 3 Nov"
    assert [c["address"] for c in doc["sections"]["reconnected"]] == ["dee@y.example"]
    assert [c["address"] for c in doc["sections"]["upcoming"]] == ["eve@z.example"]

    circle = doc["sections"]["circles"][0]
    assert circle["text"] == "2 of 3 people at oldco.example went quiet since March"
    assert (circle["members"], circle["cold"]) == (3, 2)
    assert doc["sections"]["sync_health"] == [
        {
            "name": "work",
            "kind": "imap",
            "error_kind": "auth",
            "error": "authentication failed: invalid credentials",
            "fix": "keepwarm auth work",
            "last_sync": "2026-11-20T08:00:00+00:00",
        }
    ]


def test_json_says_what_is_news() -> None:
    doc = json.loads(render_json(news_digest()))
    assert doc["news_since"] == "2026-11-16T08:00:00+00:00"
    assert doc["news"]["going_cold"] == 1
    assert doc["news"]["reconnected"] == 1
    ana, olde = doc["sections"]["going_cold"]
    assert {
        k: ana[k] for k in ("status", "status_text", "news", "changed_at", "previous_status")
    } == {
        "status": "cold",
        "status_text": "newly cold since 19 Nov",
        "news": "newly cold",
        "changed_at": "2026-11-19T08:00:00+00:00",
        "previous_status": "cooling",
    }
    assert (olde["news"], olde["changed_at"], olde["status_text"]) == (None, None, "cold")
    [dee] = doc["sections"]["reconnected"]
    assert (dee["news"], dee["previous_status"]) == ("newly reconnected", None)
    # Without recorded changes the fields are there, empty.
    plain = json.loads(render_json(full_digest()))
    assert plain["news_since"] is None
    assert set(plain["news"].values()) == {0}


def test_json_keeps_every_section_key_and_says_which_were_shown() -> None:
    config = DigestConfig(sections=("going_cold",), subjects=False)
    doc = json.loads(render_json(full_digest(config)))
    assert doc["sections_shown"] == ["going_cold"]
    assert list(doc["sections"]) == list(DIGEST_SECTIONS)
    assert doc["sections"]["owed_replies"] == []
    assert all(c["subject"] is None for c in doc["sections"]["going_cold"])


def test_json_of_an_empty_week() -> None:
    doc = json.loads(render_json(empty_digest()))
    assert doc["empty"] is True
    assert doc["headline"] == "All warm this week: nobody is going cold."
    assert all(items == [] for items in doc["sections"].values())
