"""The digest as an email: multipart/alternative (plain text, then HTML), built with `email`.

Headers, and why (the point is a personal note that lands in the inbox and starts no loops):
- `From` is `smtp.from` (default: the recipient, named "keepwarm"). Spam filters judge mostly by
  whether From's domain matches the server that sends and signs it (SPF, DKIM, DMARC): use an
  address your SMTP account may send as, and the provider signs the message for you.
- `Message-ID` is made once per period and stored in the outbox before the first attempt, on
  From's domain (a bare host name like `localhost` there is a common spam signal). A resend
  after a crash carries the same Message-ID, so clients that collapse duplicates do.
- `Date` is when the message was first built, in the digest's time zone.
- `Auto-Submitted: auto-generated` (RFC 3834): vacation responders and other automata must not
  answer it; `X-Auto-Response-Suppress: OOF, AutoReply` says the same to Exchange/Outlook,
  which do not read RFC 3834. Delivery reports are *not* suppressed: a bounce should reach you.
- No `Precedence: bulk` and no `List-Unsubscribe`: this is one message to its one owner, not
  bulk mail. `Precedence: bulk` is non-standard (RFC 3834 replaces it with Auto-Submitted) and
  steers providers toward "Promotions"-style folders; `List-Unsubscribe` promises a mailto: or
  one-click https endpoint (RFC 2369, RFC 8058) that nothing here would serve. Instead a footer
  in both parts, and the `X-Keepwarm-Stop` header, say how to stop the digest.
- `X-Keepwarm-Period` names the week, for mail filters and for spotting a duplicate.
- Both parts say the same thing (filters penalise alternatives that differ), carry no images,
  links or remote resources, and are quoted-printable UTF-8: 7-bit safe for any server, with
  the HTML's long lines folded under SMTP's 998-octet limit.
"""

from __future__ import annotations

import secrets
from datetime import datetime, tzinfo
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses

from keepwarm.digest.model import Digest
from keepwarm.digest.render import render_html, render_text

__all__ = [
    "address_of",
    "build_message",
    "needs_smtputf8",
    "new_message_id",
    "sender_of",
    "stop_line",
    "subject",
    "to_bytes",
]

SUBJECT_PREFIX = "keepwarm: "


def address_of(text: str) -> str:
    """The bare address in `Name <a@b>` or `a@b`; ValueError when there is not exactly one."""
    found = [addr for _, addr in getaddresses([text]) if addr]
    if len(found) != 1 or "@" not in found[0]:
        raise ValueError(f"not one email address: {text!r}")
    return found[0]


def sender_of(from_: str | None, recipient: str) -> str:
    """The From header: `smtp.from` as given, else the recipient's own address as "keepwarm"."""
    return from_ or formataddr(("keepwarm", address_of(recipient)))


def subject(digest: Digest) -> str:
    """`keepwarm: 3 people going cold, 1 reply owed`: the headline without its full stop."""
    return SUBJECT_PREFIX + digest.headline.rstrip(".")


def new_message_id(period: str, sender: str) -> str:
    """A fresh Message-ID on the sender's domain: `<keepwarm.2026-W48.1f…@example.org>`."""
    domain = address_of(sender).rpartition("@")[2] or "keepwarm.invalid"
    return f"<keepwarm.{period}.{secrets.token_hex(10)}@{domain}>"


def stop_line(config_path: str | None) -> str:
    """How to stop receiving the digest, for the footer and the X-Keepwarm-Stop header."""
    where = f" in {config_path}" if config_path else " in keepwarm's config"
    return (
        f"To stop this weekly email, delete `to` under [digest]{where} and reload keepwarm "
        "(systemctl reload keepwarm, or restart it). To leave one person out, use the snooze "
        "or ignore command beside them."
    )


def build_message(
    digest: Digest,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    date: datetime,
    tz: tzinfo,
    stop: str,
) -> EmailMessage:
    """The email for `digest`: headers as in the module docstring, text and HTML parts."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject(digest)
    msg["Date"] = format_datetime(date.astimezone(tz))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg["X-Keepwarm-Period"] = digest.period
    msg["X-Keepwarm-Stop"] = stop
    msg.set_content(render_text(digest, stop=stop), cte="quoted-printable")
    msg.add_alternative(render_html(digest, stop=stop), subtype="html", cte="quoted-printable")
    return msg


def needs_smtputf8(*addresses: str) -> bool:
    """True when an address cannot be written in ASCII (an internationalised mailbox name)."""
    return not all(address_of(a).isascii() for a in addresses)


def to_bytes(msg: EmailMessage) -> bytes:
    """The message as sent: CRLF line ends; UTF-8 headers only for internationalised addresses."""
    utf8 = needs_smtputf8(str(msg["From"]), str(msg["To"]))
    return msg.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
