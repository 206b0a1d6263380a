"""Digest benchmark: compose + render (text and HTML) for 50,000 contacts vs ranking them.

Target (issue 7): composing and rendering the digest of 50,000 contacts in under 1 s. Usage:

    .venv/bin/python bench/digest_render.py [--contacts 50000] [--touchpoints 750000] [--rounds 5]

Input: the same synthetic histories as bench/digest_compose.py (heavy-tailed, three years, some
contacts gone quiet), folded and assessed at one `now`; circles found once, as `keepwarm digest`
does before composing. That benchmark covers composition alone; this one adds what the email
needs on top: the text and HTML renderings, and the MIME message with both (the bytes sent).

Reference, same run, same objects: one plain `sorted()` of all the assessments by the going-cold
ranking key. Ranking everyone is the one step a digest cannot skip; the ratio says what the
whole compose-and-render costs on top of it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

from _common import best_of, histories, line, machine

from keepwarm.config.schema import Config
from keepwarm.digest.compose import compose, score
from keepwarm.digest.message import build_message, stop_line, to_bytes
from keepwarm.digest.render import render_html, render_text
from keepwarm.relationship.assess import assess
from keepwarm.relationship.circles import cooling_circles
from keepwarm.relationship.fold import fold
from keepwarm.relationship.state import Assessment

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
TIER = "network"
ME = "me@example.org"


def assessments(touchpoints: int, contacts: int) -> list[Assessment]:
    model = Config().model
    return [
        assess(fold(h[0].counterpart, (h[0].counterpart,), h, model, TIER), NOW, model, tier=TIER)
        for h in histories(touchpoints, contacts, seed=11)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--touchpoints", type=int, default=750_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each step; best counts")
    args = parser.parse_args()
    print(f"folding {args.touchpoints:,} touchpoints into {args.contacts:,} states ...")
    found = assessments(args.touchpoints, args.contacts)
    circles = cooling_circles(found, now=NOW)
    config = Config().digest

    def digest_and_parts() -> tuple[str, str]:
        digest = compose(found, now=NOW, config=config, circles=circles)
        return render_text(digest), render_html(digest)

    def email() -> bytes:
        digest = compose(found, now=NOW, config=config, circles=circles)
        msg = build_message(
            digest, sender=ME, recipient=ME, message_id="<bench@example.org>", date=NOW,
            tz=ZoneInfo("UTC"), stop=stop_line(None),
        )  # fmt: skip
        return to_bytes(msg)

    rows: list[tuple[float, float, float, float, float]] = []
    for _ in range(args.rounds):
        reference = best_of(lambda: sorted(found, key=lambda a: (-score(a), a.state.key)), 1)[0]
        composed, digest = best_of(
            lambda: compose(found, now=NOW, config=config, circles=circles), 1
        )
        text = best_of(partial(render_text, digest), 1)[0]
        html = best_of(partial(render_html, digest), 1)[0]
        whole, (plain, markup) = best_of(digest_and_parts, 1)
        rows.append((reference, composed, text, html, whole))
    best = [min(column) for column in zip(*rows, strict=True)]
    reference, composed, text, html, whole = best
    mail_time, raw = best_of(email, args.rounds)

    statuses = Counter(a.status for a in found)
    sizes = ", ".join(f"{s.key} {s.size + s.omitted}" for s in digest.sections)
    line("machine", machine())
    line("contacts", f"{len(found):,}  ({', '.join(f'{k} {n:,}' for k, n in statuses.items())})")
    line("digest", f"{sizes}; {len(circles)} circles")
    line("output", f"text {len(plain):,} chars, HTML {len(markup):,} chars, mail {len(raw):,} B")
    line("reference: plain sort", f"{ms(reference)} (best of {args.rounds})")
    line("compose", ms(composed))
    line("render text", ms(text))
    line("render HTML", ms(html))
    line("compose + text + HTML", f"{ms(whole)} (target < 1000)")
    line("  ... + MIME message, as sent", ms(mail_time))
    runs = " ".join(f"{r[0] * 1000:.0f}/{r[4] * 1000:.0f}" for r in rows)
    line("all runs, sort / compose+render", runs)
    line("ratio compose+render / sort", f"{whole / reference:.2f}")
    line("target met", "yes" if whole < 1.0 else "NO")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


if __name__ == "__main__":
    main()
