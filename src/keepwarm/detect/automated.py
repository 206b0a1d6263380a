"""Rules for mail that no person wrote to the owner: lists, bulk, auto-replies, no-reply and role
senders, calendar invitations. Each rule returns a short slug that is counted as a filter reason.

Decisions worth knowing:
- List-Id or List-Post means a mailing list. List-Unsubscribe alone means bulk (marketing and
  notification senders add it without being a list).
- X-Auto-Response-Suppress alone is NOT automated: Outlook and Exchange stamp it on ordinary
  mail from some clients (and it asks *others* not to auto-reply). It counts only together
  with an auto-reply subject prefix ("Automatic reply:", "Out of Office:", ...), which is how
  Exchange OOF replies look. Auto-Submitted (other than "no"), X-Autoreply, X-Autorespond and a
  null Return-Path (<>, RFC 3834 responses, bounces and receipts) count on their own.
- Invitations are skipped because the calendar connectors count the meeting itself; counting
  the email too would count the meeting twice (replies such as "Accepted:" likewise).
- Messages the owner sent: the sender rules (no-reply, role address) do not apply, because the
  sender is the owner; the detector drops no-reply and role *recipients* one by one instead.
  The header rules do apply: a list echo of the owner's post, the owner's vacation responder
  (Gmail keeps those in Sent) and an invitation sent from the owner's calendar are not
  touches either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keepwarm.model import MessageMeta

# Local parts of senders nobody can answer. Matched as a word of the local part, so
# "drive-shares-noreply", "bounces+1234" and "calendar-notification" match too.
NOREPLY_WORDS = (
    r"no[-_.]?reply", r"do[-_.]?not[-_.]?reply", r"dont[-_.]?reply", r"mailer[-_.]?daemon",
    r"postmaster", r"notifications?", r"notify", r"bounces?", r"auto[-_.]?confirm",
    r"auto[-_.]?reply", r"unsubscribe",
)  # fmt: skip
NOREPLY = r"(?:^|[-+._])(?:" + "|".join(NOREPLY_WORDS) + r")(?:$|[-+._0-9])"

# Local parts that reach a function, not a person. "hello" and "office" are left out on
# purpose: freelancers and small firms use them as the one personal address. Add more with
# config detect.role_addresses.
ROLE_LOCALS = frozenset(
    {
        "info", "support", "sales", "billing", "team", "admin", "administrator", "help",
        "contact", "newsletter", "newsletters", "news", "marketing", "enquiries", "inquiries",
        "feedback", "press", "media", "jobs", "careers", "recruiting", "hr", "accounts",
        "accounting", "invoices", "invoice", "service", "customerservice", "customercare",
        "webmaster", "hostmaster", "abuse", "security", "privacy", "legal", "orders", "shop",
        "store", "events", "community", "membership", "members", "bookings", "reservations",
        "noc", "ops", "it", "helpdesk", "servicedesk", "updates", "digest", "receipts",
    }
)  # fmt: skip

INVITATION_PREFIXES = (
    "invitation:", "updated invitation:", "invitation updated:", "accepted:", "declined:",
    "tentatively accepted:", "tentative:", "canceled event:", "cancelled event:", "canceled:",
    "cancelled:", "new time proposed:", "event canceled:", "event cancelled:",
)  # fmt: skip
AUTO_REPLY_PREFIXES = (
    "automatic reply:", "auto reply:", "auto-reply:", "autoreply:", "out of office:",
    "out of office reply:", "abwesenheitsnotiz:", "automatische antwort:",
    "réponse automatique:", "respuesta automática:", "risposta automatica:",
)  # fmt: skip
CALENDAR_CONTENT_CLASS = "urn:content-classes:calendarmessage"


def noreply_pattern(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """The built-in no-reply rule plus extra regexes (config detect.noreply_patterns), searched
    in lower-case local parts."""
    parts = [NOREPLY, *(f"(?:{pattern})" for pattern in extra)]
    return re.compile("|".join(parts))


def role_locals(extra: Iterable[str] = ()) -> frozenset[str]:
    """The built-in role local parts plus extra ones (config detect.role_addresses)."""
    return ROLE_LOCALS | {item.strip().lower().rstrip("@") for item in extra if item.strip()}


def is_noreply(address: str, noreply: re.Pattern[str]) -> bool:
    """True when the address's local part says nobody reads replies."""
    return noreply.search(address.rpartition("@")[0].lower()) is not None


def is_role(address: str, roles: frozenset[str]) -> bool:
    """True when the local part (ignoring any +tag) is a role such as info@ or support@."""
    local = address.rpartition("@")[0].lower().partition("+")[0]
    return local in roles


def automated_reason(
    meta: MessageMeta,
    *,
    noreply: re.Pattern[str],
    role_locals: frozenset[str],
    owner_sent: bool = False,
) -> str | None:
    """Why this message is not a person writing, as a slug, or None when a person wrote it.

    Slugs: "mailing-list", "bulk", "auto-reply", "invitation", "no-reply", "role-address".
    `owner_sent` (or meta.sent) turns the sender rules off (see the module docstring).
    """
    signals = dict(meta.signals)
    if "list-id" in signals or "list-post" in signals:
        return "mailing-list"
    precedence = signals.get("precedence", "").strip().lower()
    if precedence in ("bulk", "list", "junk") or "list-unsubscribe" in signals:
        return "bulk"
    subject = (meta.subject or "").lower()
    if _auto_reply(signals, subject):
        return "auto-reply"
    content_type = signals.get("content-type", "").lower()
    if (
        content_type.startswith(("text/calendar", "application/ics"))
        or signals.get("content-class", "").strip().lower() == CALENDAR_CONTENT_CLASS
        or subject.startswith(INVITATION_PREFIXES)
    ):
        return "invitation"
    if owner_sent or meta.sent:
        return None
    sender = meta.sender[0].address if meta.sender else ""
    if is_noreply(sender, noreply):
        return "no-reply"
    if is_role(sender, role_locals):
        return "role-address"
    return None


def _auto_reply(signals: dict[str, str], subject: str) -> bool:
    submitted = signals.get("auto-submitted", "").strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    for name in ("x-autoreply", "x-autorespond"):
        if name in signals and signals[name].strip().lower() not in ("no", "false", "0"):
            return True
    if signals.get("return-path", "").replace(" ", "") == "<>":
        return True
    suppress = signals.get("x-auto-response-suppress", "").lower()
    return bool(suppress) and subject.startswith(AUTO_REPLY_PREFIXES)
