"""The configuration as frozen dataclasses. Defaults here are the documented defaults.

`config/load.py` builds these from TOML and reports every problem with its key path; field
metadata (`doc`, bounds, choices) drives that validation and the commented example config.
"""

# opt_factory returns dataclasses.field(default_factory=...), so no default is shared between
# instances; ruff cannot see through the wrapper.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_KINDS = (
    "maildir", "mbox", "imap", "gmail", "google_calendar",
    "outlook", "outlook_calendar", "caldav", "ics",
)  # fmt: skip
MAIL_KINDS = frozenset({"maildir", "mbox", "imap", "gmail", "outlook"})
SECURITY = ("tls", "starttls", "none")


def opt(default: Any, doc: str, **rules: Any) -> Any:
    """A field with its documentation and rules (gt, ge, lt, le, choices; path=True: ~ expanded)."""
    return field(default=default, metadata={"doc": doc, **rules})


def opt_factory(factory: Any, doc: str, **rules: Any) -> Any:
    return field(default_factory=factory, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class OwnerConfig:
    addresses: tuple[str, ...] = opt((), "every address that is you, beside each account's own")
    name: str | None = opt(None, "your name, used in the digest greeting")


@dataclass(frozen=True)
class StoreConfig:
    url: str | None = opt(
        None,
        "SQLAlchemy URL; default: SQLite file keepwarm.db in the XDG state directory",
    )


@dataclass(frozen=True)
class AccountConfig:
    """One source. Which fields apply depends on `kind` (see README per provider)."""

    name: str = opt("", "a short unique name, used in logs and `keepwarm status`")
    kind: str = opt("", "the connector", choices=ACCOUNT_KINDS)
    enabled: bool = opt(True, "false keeps the account's history but stops polling it")
    addresses: tuple[str, ...] = opt((), "the account's own addresses (owner identities)")
    path: str | None = opt(None, "maildir / mbox / ics: a local path", path=True)
    url: str | None = opt(None, "caldav / ics: the server or feed URL")
    host: str | None = opt(None, "imap: server host name")
    port: int | None = opt(None, "imap: port (default 993 for tls, 143 otherwise)", ge=1, le=65535)
    security: str = opt("tls", "imap: tls | starttls | none", choices=SECURITY)
    username: str | None = opt(None, "imap / caldav: login name")
    password_file: str | None = opt(None, "a file holding only the password", path=True)
    password_env: str | None = opt(None, "an environment variable holding the password")
    password_command: tuple[str, ...] | None = opt(None, "a command printing the password")
    folders: tuple[str, ...] = opt((), "extra folders to read beside the inbox and sent folder")
    sent_folder: str | None = opt(None, "the sent folder when it cannot be discovered")
    calendars: tuple[str, ...] = opt((), "calendars to read (default: primary / all you own)")
    backfill_days: int = opt(1095, "how far back the first sync reads", gt=0)
    interval_seconds: int | None = opt(
        None, "poll interval (default: mail 300, calendar 900)", ge=10
    )
    credentials_file: str | None = opt(
        None, "gmail / google_calendar: authorized-user JSON", path=True
    )
    endpoint: str | None = opt(None, "gmail / google_calendar: API root override")
    client_id: str | None = opt(None, "outlook: application (client) id")
    tenant: str = opt("common", "outlook: common | consumers | organizations | tenant id")
    authority: str | None = opt(None, "outlook: authority URL override (https)")
    graph_endpoint: str | None = opt(None, "outlook: Graph root override")
    ca_file: str | None = opt(None, "a CA bundle to trust for this account's server", path=True)
    mailbox: str | None = opt(None, "outlook app-only: the mailbox address to read")
    client_secret_file: str | None = opt(
        None, "outlook app-only: file holding the secret", path=True
    )
    client_secret_env: str | None = opt(None, "outlook app-only: env var holding the secret")
    client_secret_command: tuple[str, ...] | None = opt(None, "outlook app-only: secret command")
    max_bytes: int = opt(20_000_000, "ics: the largest feed accepted", gt=0)
    timeout: float = opt(
        60.0,
        "caldav / ics / imap: seconds to wait for the server's answer (imap: its greeting too)",
        gt=0,
    )
    server_expand: bool = opt(
        False, "caldav: let the server expand recurring events (default: expanded locally)"
    )
    client_secrets_file: str | None = opt(
        None, "gmail / google_calendar: OAuth client JSON for `keepwarm auth google`", path=True
    )
    service_account_file: str | None = opt(
        None, "gmail / google_calendar: service-account key (domain-wide delegation)", path=True
    )
    users: tuple[str, ...] = opt(
        (), "gmail / google_calendar with service_account_file: the Workspace users to read"
    )
    rate_limit: float | None = opt(
        None, "gmail / google_calendar: quota units (requests) per second; default 250 (10)", gt=0
    )
    auth: str = opt(
        "password",
        "imap: password | xoauth2 (an OAuth access token: Gmail, Outlook)",
        choices=("password", "xoauth2"),
    )
    oauth_provider: str | None = opt(
        None,
        "imap with auth = xoauth2: google | microsoft; unset: the token is read like a password",
        choices=("google", "microsoft"),
    )
    idle: bool = opt(True, "imap: push with IDLE where the server offers it (false: poll only)")
    lookahead_days: int = opt(365, "outlook_calendar: how far ahead meetings are read", gt=0)
    fetch_headers: bool = opt(
        True,
        "outlook: look up the internet headers of mail the address fields cannot judge"
        " (lists, Bcc, out of office) to spot automated mail; false: never",
    )

    @property
    def is_mail(self) -> bool:
        return self.kind in MAIL_KINDS


@dataclass(frozen=True)
class WeightsConfig:
    out_direct: float = opt(1.0, "an email you sent to them directly", ge=0)
    in_direct: float = opt(0.7, "an email they sent to you directly", ge=0)
    cc: float = opt(0.3, "an email where either of you was only in Cc", ge=0)
    meeting_1to1: float = opt(3.0, "a meeting of the two of you", ge=0)
    meeting_small: float = opt(1.5, "a meeting of at most small_meeting people", ge=0)
    meeting_large: float = opt(0.3, "a bigger meeting (up to detect.max_group)", ge=0)
    small_meeting: int = opt(5, "the most people (you included) in a small meeting", ge=3)


@dataclass(frozen=True)
class TierConfig:
    max_days: int = opt(365, "silence after which the contact is cold whatever its rhythm", gt=0)
    typical_days: float = opt(
        30.0, "the prior typical gap for contacts of this tier with little history", gt=0
    )


def _default_tiers() -> dict[str, TierConfig]:
    return {
        "inner": TierConfig(max_days=60, typical_days=10.0),
        "close": TierConfig(max_days=120, typical_days=30.0),
        "network": TierConfig(max_days=365, typical_days=90.0),
    }


@dataclass(frozen=True)
class ModelConfig:
    half_life_days: float = opt(90.0, "warmth halves after this many days", gt=0)
    episode_gap_days: float = opt(1.0, "touchpoints closer than this form one episode", ge=0)
    min_days: float = opt(14.0, "never cooling before this many days of silence", ge=0)
    dormant_days: float = opt(730.0, "silent this long = dormant, out of the digest", gt=0)
    cooling_below: float = opt(0.2, "cooling when P(a gap this long) falls below", gt=0, lt=1)
    cold_below: float = opt(0.05, "cold when P(a gap this long) falls below", gt=0, lt=1)
    prior_strength: float = opt(
        4.0, "how many gaps' worth of weight the tier prior has in the learned rhythm", ge=0
    )
    prior_sigma: float = opt(0.8, "prior spread of log-gaps (natural log)", gt=0)
    reply_days: float = opt(3.0, "their email unanswered this long = you owe a reply", ge=0)
    response_days: float = opt(
        14.0, "a reply within this after you reached out = reconnected", gt=0
    )
    retry_days: float = opt(60.0, "no reply to your reach-out: out of the list this long", ge=0)
    default_tier: str = opt("network", "tier of contacts no rule places")
    tiers: dict[str, TierConfig] = opt_factory(_default_tiers, "tiers by name")
    weights: WeightsConfig = opt_factory(WeightsConfig, "touchpoint weights")


@dataclass(frozen=True)
class DetectConfig:
    max_group: int = opt(10, "emails or meetings with more people than this are ignored", ge=2)
    keep_subjects: bool = opt(False, "store subjects in the event log (privacy: off)")
    noreply_patterns: tuple[str, ...] = opt((), "extra regexes for no-reply local parts")
    role_addresses: tuple[str, ...] = opt((), "extra role local parts (info, support, ...)")
    free_mail_domains: tuple[str, ...] = opt((), "extra domains that are not organisations")


@dataclass(frozen=True)
class ContactsConfig:
    aliases: tuple[tuple[str, ...], ...] = opt((), "lists of addresses that are one person")
    ignore: tuple[str, ...] = opt((), "addresses or @domain (subdomains included) to ignore")
    pin: tuple[str, ...] = opt((), "addresses or @domain always tracked, even one-way")
    tiers: dict[str, tuple[str, ...]] = opt_factory(dict, "tier name -> addresses or @domain")
    tags: dict[str, tuple[str, ...]] = opt_factory(dict, "tag -> addresses or @domain")
    vcards: tuple[str, ...] = opt(
        (), "vCard files whose cards name people (and their aliases)", path=True
    )


DIGEST_SECTIONS = (
    "going_cold", "owed_replies", "reconnected", "circles", "upcoming", "sync_health",
)  # fmt: skip


@dataclass(frozen=True)
class DigestConfig:
    to: str | None = opt(None, "recipient of the weekly digest")
    schedule: str = opt("Mon 08:00", "weekday and time the digest leaves")
    timezone: str = opt("UTC", "IANA time zone of the schedule")
    max_items: int = opt(10, "most contacts in the going-cold section", gt=0)
    sections: tuple[str, ...] = opt(DIGEST_SECTIONS, "sections shown", choices=DIGEST_SECTIONS)
    subjects: bool = opt(False, "show kept subjects in the digest")
    send_empty: bool = opt(True, "send a one-line digest on a quiet week (false: skip it)")
    max_per_section: int = opt(
        20,
        "most entries in each other section (replies owed, reconnected, circles, upcoming);"
        " the rest are counted",
        gt=0,
    )


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None = opt(None, "SMTP server")
    port: int = opt(587, "SMTP port", ge=1, le=65535)
    security: str = opt("starttls", "tls | starttls | none", choices=SECURITY)
    username: str | None = opt(None, "SMTP login")
    password_file: str | None = opt(None, "a file holding only the password", path=True)
    password_env: str | None = opt(None, "an environment variable holding the password")
    password_command: tuple[str, ...] | None = opt(None, "a command printing the password")
    from_: str | None = opt(None, "From header (key: from)")
    ca_file: str | None = opt(None, "a CA bundle to trust", path=True)
    timeout: float = opt(30.0, "seconds before a stalled SMTP conversation fails", gt=0)


@dataclass(frozen=True)
class DaemonConfig:
    mail_interval: int = opt(300, "seconds between mail polls", ge=10)
    calendar_interval: int = opt(900, "seconds between calendar polls", ge=10)
    jitter: float = opt(0.1, "random share added to each interval", ge=0, le=1)
    log_level: str = opt("info", "debug | info | warning | error",
                         choices=("debug", "info", "warning", "error"))  # fmt: skip
    workers: int = opt(4, "accounts polled at the same time; a slow one holds one slot only",
                       ge=1, le=64)  # fmt: skip
    backoff_min: int = opt(60, "seconds before the first retry after a network failure; "
                           "doubles each time, up to an hour", ge=1, le=3600)  # fmt: skip
    push: bool = opt(True, "wake an account early when its server announces new mail (IMAP IDLE)")
    stop_timeout: int = opt(30, "seconds SIGTERM waits for the batches in flight before exiting",
                            ge=1, le=600)  # fmt: skip
    status_interval: int = opt(3600, "seconds between checks that record status changes "
                               "(warm -> cooling -> cold, reconnected)", ge=60)  # fmt: skip
    lease_seconds: int = opt(120, "team mode: how long an account stays with a worker that "
                             "stopped renewing its lease", ge=15, le=3600)  # fmt: skip
    worker_id: str = opt("", "team mode: this worker's name in leases and logs; empty = host:pid")
    metrics_listen: str = opt("", "host:port for the Prometheus endpoint, e.g. 127.0.0.1:9464; "
                              "empty = off")  # fmt: skip


@dataclass(frozen=True)
class Config:
    owner: OwnerConfig = opt_factory(OwnerConfig, "who you are")
    store: StoreConfig = opt_factory(StoreConfig, "where the event log lives")
    accounts: tuple[AccountConfig, ...] = opt((), "mail and calendar sources")
    model: ModelConfig = opt_factory(ModelConfig, "the relationship model")
    detect: DetectConfig = opt_factory(DetectConfig, "what counts as a touchpoint")
    contacts: ContactsConfig = opt_factory(ContactsConfig, "people rules")
    digest: DigestConfig = opt_factory(DigestConfig, "the weekly digest")
    smtp: SmtpConfig = opt_factory(SmtpConfig, "mail out")
    daemon: DaemonConfig = opt_factory(DaemonConfig, "the service")
    path: Path | None = field(default=None, metadata={"internal": True})

    def owner_addresses(self) -> frozenset[str]:
        """Every configured owner address (not yet normalised), accounts' own included."""
        found = set(self.owner.addresses)
        for account in self.accounts:
            found.update(account.addresses)
        return frozenset(found)
