"""Render a composed `Digest` as plain text (80 columns), HTML (inline CSS) or JSON.

The JSON document (`render_json`) is a stable interface for scripts; fields are only ever added:

    {
      "version": 1,
      "period": "2026-W48",                 # ISO week in the digest's time zone
      "generated_at": "2026-11-23T08:00:00+00:00",
      "empty": false,                       # true: nothing in any shown section
      "headline": "3 people going cold, 1 reply owed.",
      "months": ["2025-12", ..., "2026-11"],   # what each sparkline value counts, oldest first
      "sections_shown": ["going_cold", ...],    # digest.sections from the config
      "omitted": {"going_cold": 0, ...},        # people left out by digest.max_items
      "sections": {                          # every key is always present; [] when not shown
        "going_cold" | "owed_replies" | "reconnected" | "upcoming": [
          {"key", "address", "name", "organisation", "status", "rhythm",
           "last_touch" (ISO 8601 UTC or null), "last_kind", "subject" (null unless
           digest.subjects), "sparkline" (12 ints), "suggestion", "detail", "reasons",
           "commands": {"snooze", "ignore"}, "score"}],
        "circles": [{"name", "kind", "text", "members", "cold", "share", "since", "names",
                     "suggestion"}],
        "sync_health": [{"name", "kind", "error_kind", "error", "fix", "last_sync"}]
      }
    }
"""

from __future__ import annotations

import functools
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from keepwarm.config.schema import DIGEST_SECTIONS
from keepwarm.digest.model import AccountLine, CircleLine, ContactLine, Digest
from keepwarm.digest.sparkline import bar_heights, blocks

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WIDTH = 80  # the text digest must read well in a terminal and in plain-text mail
JSON_VERSION = 1


def render_text(digest: Digest, *, stop: str | None = None) -> str:
    """The plain-text digest, wrapped to 80 columns; also the text/plain part of the mail.

    `stop`, in the mail only, is the footer line saying how to stop the digest.
    """
    return _environment().get_template("digest.txt.j2").render(d=digest, stop=stop)


def render_html(digest: Digest, *, stop: str | None = None) -> str:
    """The HTML digest: tables and inline styles only, since mail clients strip <style>."""
    return _environment().get_template("digest.html.j2").render(d=digest, stop=stop)


def render_json(digest: Digest) -> str:
    """The digest as one JSON document (see the module docstring for its fields)."""
    return json.dumps(to_document(digest), indent=2, ensure_ascii=False) + "\n"


def to_document(digest: Digest) -> dict[str, Any]:
    """The JSON document as Python data, for callers that embed it in a bigger one."""
    sections: dict[str, list[dict[str, Any]]] = {key: [] for key in DIGEST_SECTIONS}
    for section in digest.sections:
        items = sections[section.key]
        items.extend(_contact(line) for line in section.contacts)
        items.extend(_circle(line) for line in section.circles)
        items.extend(_account(line) for line in section.accounts)
    return {
        "version": JSON_VERSION,
        "period": digest.period,
        "generated_at": _iso(digest.generated_at),
        "empty": digest.empty,
        "headline": digest.headline,
        "months": list(digest.months),
        "sections_shown": [s.key for s in digest.sections],
        "omitted": {s.key: s.omitted for s in digest.sections},
        "news_since": _iso(digest.news_since),
        "news": {s.key: s.news for s in digest.sections},
        "sections": sections,
    }


def _contact(line: ContactLine) -> dict[str, Any]:
    return {
        "key": line.key,
        "address": line.address,
        "name": line.name,
        "organisation": line.organisation,
        "status": line.status,
        "rhythm": line.rhythm,
        "last_touch": _iso(line.last_touch),
        "last_kind": line.last_kind,
        "subject": line.subject,
        "sparkline": list(line.sparkline),
        "suggestion": line.suggestion,
        "detail": line.detail,
        "reasons": list(line.reasons),
        "commands": {"snooze": line.snooze, "ignore": line.ignore},
        "score": round(line.score, 4),
        "status_text": line.status_text,
        "news": line.news,
        "changed_at": _iso(line.changed_at),
        "previous_status": line.previous_status,
    }


def _circle(line: CircleLine) -> dict[str, Any]:
    return {
        "name": line.name,
        "kind": line.kind,
        "text": line.text,
        "members": line.members,
        "cold": line.cold,
        "share": round(line.share, 4),
        "since": _iso(line.since),
        "names": list(line.names),
        "suggestion": line.suggestion,
    }


def _account(line: AccountLine) -> dict[str, Any]:
    return {
        "name": line.name,
        "kind": line.kind,
        "error_kind": line.error_kind,
        "error": line.error,
        "fix": line.fix,
        "last_sync": _iso(line.last_sync),
    }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def _wrap(text: str, first: str = "", indent: int = 0) -> str:
    """Fill `text` to WIDTH after the prefix `first`, continuing lines at `indent` spaces.

    Words are never broken, so addresses and commands stay whole and copyable.
    """
    return textwrap.fill(
        text,
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _commands(line: ContactLine, indent: int) -> str:
    """Both commands on one line when they fit, else one per line (never wrapped mid-command)."""
    pad = " " * indent
    together = f"{pad}{line.snooze}  ·  {line.ignore}"
    return together if len(together) <= WIDTH else f"{pad}{line.snooze}\n{pad}{line.ignore}"


def _month_label(key: str) -> str:
    """`2026-03` -> `Mar 2026`, for the sparkline legend."""
    year, month = key.split("-")
    return f"{_MONTHS[int(month) - 1]} {year}"


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("keepwarm.digest", "templates"),
        # Only the HTML template is escaped: the text digest must show `O'Brien & Co` as is.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["blocks"] = blocks
    env.filters["bars"] = bar_heights
    env.filters["wrap80"] = _wrap
    env.filters["commands"] = _commands
    env.filters["month_label"] = _month_label
    return env
