"""The config's rules across fields, checked after `load.py`'s walker has built a `Config`.

The walker has already enforced each value's type, bounds and choices; these rules relate values
to each other or to the world: required keys per account kind, one secret source at a time, no
plain text to a remote host, URL schemes, tier names, the digest schedule and time zone, regular
expressions, addresses, and the metrics endpoint on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepwarm.config.checks_cloud import (
    GOOGLE_CREDENTIALS,
    TENANT,
    check_google,
    check_microsoft,
)
from keepwarm.config.problems import Problems, show
from keepwarm.config.schema import ACCOUNT_KINDS, AccountConfig, Config, SmtpConfig
from keepwarm.hosts import is_loopback

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {n: i for i, name in enumerate(_DAY_NAMES) for n in (name, name[:3])}
_REQUIRED = {
    "maildir": ("path",), "mbox": ("path",), "imap": ("host", "username"),
    "caldav": ("url", "username"), "outlook": ("client_id",),
    "outlook_calendar": ("client_id",),
}  # fmt: skip
_GOOGLE_KINDS = ("gmail", "google_calendar")


def parse_schedule(text: str) -> tuple[int, time]:
    """`"Mon 08:00"` -> `(0, time(8, 0))`: weekday (Monday is 0, as `datetime.weekday`), time."""
    match = re.fullmatch(r"\s*([A-Za-z]+)\s+(\d{1,2}):(\d\d)\s*", text)
    if match and match[1].lower() in _DAYS and int(match[2]) < 24 and int(match[3]) < 60:
        return _DAYS[match[1].lower()], time(int(match[2]), int(match[3]))
    raise ValueError(f'expected "<Mon..Sun> HH:MM" like "Mon 08:00", got {show(text)}')


def parse_listen(text: str) -> tuple[str, int]:
    """`"127.0.0.1:9464"` or `"[::1]:9464"` -> (host, port), loopback only: the endpoint has no
    authentication. Port 0 picks a free one."""
    host, _, port = text.strip().rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f'expected "host:port" like "127.0.0.1:9464", got {show(text)}')
    if not is_loopback(host):
        why = "the endpoint has no authentication"
        raise ValueError(f"must be a loopback address like 127.0.0.1 ({why}), got {show(host)}")
    return host.strip("[]"), int(port)


def check(config: Config) -> Problems:
    """Rules across fields, on a `Config` the walker built (types and bounds already hold)."""
    out: Problems = []
    for i, account in enumerate(config.accounts):
        _check_account(account, f"accounts[{i}]", out)
    names = [account.name for account in config.accounts]
    for i, name in enumerate(names):
        if name and name in names[:i]:
            out.append(
                (f"accounts[{i}].name", f"{show(name)} is also accounts[{names.index(name)}]")
            )
    smtp = config.smtp
    _one_source(smtp, "smtp", "password", out)
    if smtp.username and not _sources(smtp, "password"):
        out.append(("smtp.password_file", f"smtp.username needs a password: {_SOURCES_HELP}"))
    _plain_text(smtp.security, smtp.host, "smtp.security", out)
    model, tiers = config.model, ", ".join(config.model.tiers)
    if model.cold_below >= model.cooling_below:
        out.append(
            (
                "model.cold_below",
                f"must be < cooling_below ({model.cooling_below}), got {model.cold_below}",
            )
        )
    if model.default_tier not in model.tiers:
        out.append(("model.default_tier", f"must be a tier in model.tiers ({tiers})"))
    for name in config.contacts.tiers:
        if name not in model.tiers:
            out.append((f"contacts.tiers.{name}", f"no such tier in model.tiers ({tiers})"))
    try:
        parse_schedule(config.digest.schedule)
    except ValueError as exc:
        out.append(("digest.schedule", str(exc)))
    if not _is_zone(config.digest.timezone):
        zone = show(config.digest.timezone)
        out.append(("digest.timezone", f"must be an IANA zone like Europe/London, got {zone}"))
    for i, pattern in enumerate(config.detect.noreply_patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            out.append((f"detect.noreply_patterns[{i}]", f"not a valid regular expression: {exc}"))
    if config.daemon.metrics_listen:
        try:
            parse_listen(config.daemon.metrics_listen)
        except ValueError as exc:
            out.append(("daemon.metrics_listen", str(exc)))
    for key, value in _address_values(config):
        if "@" not in value:
            out.append((key, f"must be an email address (or @domain), got {show(value)}"))
    return out


def _check_account(account: AccountConfig, at: str, out: Problems) -> None:
    kind = show(account.kind)
    if not account.name.strip():
        out.append((f"{at}.name", "required: a short unique name for logs and status"))
    elif any(ord(c) < 32 or ord(c) == 127 for c in account.name):
        out.append((f"{at}.name", f"must not contain control characters, got {show(account.name)}"))
    if not account.kind:
        out.append((f"{at}.kind", f"required: one of {', '.join(ACCOUNT_KINDS)}"))
    for name in _REQUIRED.get(account.kind, ()):
        if not getattr(account, name):
            out.append((f"{at}.{name}", f"required for kind {kind}"))
    if account.kind == "ics" and (account.url is None) == (account.path is None):
        out.append((f"{at}.url", 'kind "ics" needs exactly one of url or path'))
    if account.kind == "caldav" and not _sources(account, "password"):
        out.append((f"{at}.password_file", f"kind {kind} needs a password: {_SOURCES_HELP}"))
    _one_source(account, at, "password", out)
    _one_source(account, at, "client_secret", out)
    if account.kind == "imap":
        _plain_text(account.security, account.host, f"{at}.security", out)
        _check_imap(account, at, out)
    host = _host(account.url or "") if account.kind == "caldav" else None
    if host and account.url and account.url[:7].lower() == "http://" and not is_loopback(host):
        # Basic auth over plain http hands the password to anyone on the path.
        message = f"plain http (unencrypted) is refused for non-loopback host {show(host)}"
        out.append((f"{at}.url", f"{message}: use https"))
    if account.kind in _GOOGLE_KINDS:
        check_google(account, at, out)
    if account.kind in ("outlook", "outlook_calendar"):
        check_microsoft(account, at, out)
    web = ("http", "https")
    urls = {"url": (*web, "file") if account.kind == "ics" else web, "authority": ("https",)}
    for name, schemes in {"endpoint": web, "graph_endpoint": web, **urls}.items():
        url = checked = getattr(account, name)
        if name == "url" and account.kind == "ics" and str(url)[:9].lower() == "webcal://":
            checked = "https://" + url[9:]  # a subscription link: the feed is served over https
        if url is not None and (problem := _url_problem(checked, schemes)):
            out.append((f"{at}.{name}", f"{problem}, got {show(url, name)}"))


def _check_imap(account: AccountConfig, at: str, out: Problems) -> None:
    """A password, or for XOAUTH2 an access token: read like a password, or from a provider."""
    given = _sources(account, "password")
    if account.oauth_provider and account.auth != "xoauth2":
        out.append((f"{at}.oauth_provider", 'applies only with auth = "xoauth2"'))
    elif account.oauth_provider and given:
        out.append((f"{at}.{given[0]}", "set either oauth_provider or a token source, not both"))
    elif account.auth == "xoauth2" and not account.oauth_provider and not given:
        out.append(
            (
                f"{at}.password_command",
                'auth = "xoauth2" needs an access token: a password_command printing it'
                " (or password_file / password_env), or oauth_provider",
            )
        )
    elif account.auth == "password" and not given:
        out.append((f"{at}.password_file", f'kind "imap" needs a password: {_SOURCES_HELP}'))
    if account.oauth_provider == "google" and account.auth == "xoauth2":
        google = [name for name in GOOGLE_CREDENTIALS if getattr(account, name)]
        if len(google) != 1:
            need = ", ".join(GOOGLE_CREDENTIALS)
            out.append((f"{at}.credentials_file", f"oauth_provider google needs one of {need}"))
    elif account.oauth_provider == "microsoft" and account.auth == "xoauth2":
        if not account.client_id:
            out.append((f"{at}.client_id", "required with oauth_provider microsoft"))
        if not TENANT.fullmatch(account.tenant):
            out.append((f"{at}.tenant", f"not a tenant name, id or domain: {show(account.tenant)}"))
        if _sources(account, "client_secret"):
            message = "IMAP signs in as you (keepwarm auth microsoft): no app-only client secret"
            out.append((f"{at}.client_secret_file", message))


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed IPv6 authority
        return "must be a URL"
    if parts.scheme not in schemes:
        wanted = filter(None, (", ".join(schemes[:-1]), schemes[-1]))
        return f"must be a URL with scheme {' or '.join(wanted)}"
    return "must name a host" if parts.scheme != "file" and not host else None


_SOURCES_HELP = "set password_file, password_env or password_command"


def _sources(section: AccountConfig | SmtpConfig, prefix: str) -> list[str]:
    names = (f"{prefix}_file", f"{prefix}_env", f"{prefix}_command")
    return [name for name in names if getattr(section, name) is not None]


def _one_source(section: AccountConfig | SmtpConfig, at: str, prefix: str, out: Problems) -> None:
    given = _sources(section, prefix)
    if len(given) > 1:
        out.append((f"{at}.{given[1]}", f"set only one of {', '.join(given)}"))
    if getattr(section, f"{prefix}_command") == ():
        out.append((f"{at}.{prefix}_command", "must name a command, got an empty array"))


def _plain_text(security: str, host: str | None, key: str, out: Problems) -> None:
    if security == "none" and host and not is_loopback(host):
        out.append((key, f'"none" (unencrypted) is refused for non-loopback host {show(host)}'))


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _address_values(config: Config) -> Iterator[tuple[str, str]]:
    contacts, accounts = config.contacts, enumerate(config.accounts)
    lists = [("owner.addresses", config.owner.addresses)]
    lists += [(f"accounts[{i}].addresses", a.addresses) for i, a in enumerate(config.accounts)]
    lists += [(f"contacts.aliases[{i}]", group) for i, group in enumerate(contacts.aliases)]
    lists += [("contacts.ignore", contacts.ignore), ("contacts.pin", contacts.pin)]
    lists += [(f"contacts.tiers.{k}", v) for k, v in contacts.tiers.items()]
    lists += [(f"contacts.tags.{k}", v) for k, v in contacts.tags.items()]
    for key, values in lists:
        yield from ((f"{key}[{i}]", value) for i, value in enumerate(values))
    singles = [(f"accounts[{i}].mailbox", a.mailbox) for i, a in accounts]
    singles += [("digest.to", config.digest.to), ("smtp.from", config.smtp.from_)]
    yield from ((key, value) for key, value in singles if value is not None)
