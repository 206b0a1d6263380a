"""An iCalendar feed: a local file (`path`, or a file:// `url`) or an http(s) `url`.

Each poll fetches the feed (conditionally: If-None-Match / If-Modified-Since from the cursor) and,
when its sha256 changed, yields one batch holding every meeting instance from
`now - backfill_days` to `now + 365 days` with `future_complete=True`, so that planned meetings
the feed no longer has (cancelled, deleted) are dropped. An unchanged feed yields one empty batch.

The cursor is JSON {etag, last_modified, sha256, expanded}. The window moves with time while a
feed may not change for months; so that instances rolling into the horizon are seen, a feed last
expanded over REFRESH_DAYS ago is fetched unconditionally and expanded again.

HTTP: `timeout` seconds (60) for each answer, at most 5 redirects and never from https to
http, TLS verified (against `ca_file` when set), at most `max_bytes`. A `webcal://` address
(what iCloud and Outlook hand out for subscriptions) is fetched over https. 5xx, 429 and
network failures are TransientError; 401/403 AuthError; 404, an oversized or non-iCalendar
feed are SourceProblem (the user must act). Error messages name only the feed's host: feed
URLs often carry a secret token.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import Message
from typing import IO, Any

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import ConnectorContext, SourceProblem, register
from keepwarm.connectors.icalendar_meetings import meetings_from_calendar
from keepwarm.errors import AuthError, CursorExpired, TransientError
from keepwarm.model import Batch

MAX_REDIRECTS = 5
HORIZON = timedelta(days=365)
REFRESH_DAYS = 7
_CHUNK = 65_536
_USER_AGENT = "keepwarm/0.1"


@register("ics")
class IcsConnector:
    """Reads one iCalendar feed; see the module docstring."""

    def __init__(self, account: AccountConfig, context: ConnectorContext) -> None:
        if not account.path and not account.url:
            raise SourceProblem(
                f"account {account.name!r} has neither url nor path", "set accounts.url or path"
            )
        self.account = account
        self.context = context

    def close(self) -> None:
        """Nothing is held open between polls."""

    def poll(self, cursor: str | None) -> Iterator[Batch]:
        """One batch: every meeting in the window if the feed changed, else an empty one."""
        state = _load(cursor)
        now = self.context.now()
        fresh = _fresh(state, now)
        fetched = self._fetch(state if fresh else {})
        if fetched is None:  # 304 Not Modified
            yield Batch(cursor=cursor)
            return
        data, etag, last_modified = fetched
        digest = hashlib.sha256(data).hexdigest()
        new_state = {"etag": etag, "last_modified": last_modified, "sha256": digest}
        if fresh and digest == state.get("sha256"):
            new_state["expanded"] = state["expanded"]
            same = all(state.get(key) == value for key, value in new_state.items())
            yield Batch(cursor=cursor if same else _dump(new_state))
            return
        if not data.lstrip(b"\xef\xbb\xbf \t\r\n")[:15].upper().startswith(b"BEGIN:VCALENDAR"):
            raise SourceProblem(
                f"the feed at {self._where()} is not iCalendar data (a login page?)",
                "check that accounts.url is the calendar's iCal export address",
            )
        meetings, skipped = meetings_from_calendar(
            data,
            source=self.account.name,
            window_start=now - timedelta(days=self.account.backfill_days),
            window_end=now + HORIZON,
        )
        if not meetings and any(skip.reason == "bad-calendar" for skip in skipped):
            # Nothing usable: keep the old cursor and the planned meetings, try again next time.
            yield Batch(skipped=skipped)
            return
        new_state["expanded"] = now.isoformat()
        yield Batch(
            items=list(meetings), skipped=skipped, cursor=_dump(new_state), future_complete=True
        )

    def _where(self) -> str:
        if self.account.path:
            return self.account.path
        parts = urllib.parse.urlsplit(self.account.url or "")
        return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "the feed URL"

    def _fetch(self, state: dict[str, str | None]) -> tuple[bytes, str | None, str | None] | None:
        """(data, etag, last-modified), or None when the server says nothing changed."""
        url = https_url(self.account.url)
        if self.account.path or (url and url.lower().startswith("file:")):
            path = self.account.path or urllib.request.url2pathname(
                urllib.parse.urlsplit(url or "").path
            )
            return self._read_file(os.path.expanduser(path)), None, None
        if not url or urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise SourceProblem(f"unsupported feed URL scheme in {url!r}", "use https://")
        headers = {"User-Agent": _USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
        if state.get("etag"):
            headers["If-None-Match"] = str(state["etag"])
        if state.get("last_modified"):
            headers["If-Modified-Since"] = str(state["last_modified"])
        try:
            with self._opener().open(
                # The scheme was checked above: http or https only (S310).
                urllib.request.Request(url, headers=headers),  # noqa: S310
                timeout=self.account.timeout,
            ) as response:
                data = self._read_limited(response, response.headers)
                return data, response.headers.get("ETag"), response.headers.get("Last-Modified")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise self._http_error(exc) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                reason = exc.reason.verify_message
                raise SourceProblem(
                    f"the certificate of {self._where()} cannot be verified: {reason}",
                    "set accounts.ca_file to the CA bundle that signed it",
                ) from exc
            raise TransientError(f"cannot reach {self._where()}: {exc.reason}") from exc
        except (TimeoutError, ConnectionError, http.client.HTTPException, ssl.SSLError) as exc:
            raise TransientError(f"reading {self._where()} failed: {exc!r}") from exc

    def _opener(self) -> urllib.request.OpenerDirector:
        try:
            context = ssl.create_default_context(cafile=self.account.ca_file)
        except OSError as exc:
            raise SourceProblem(
                f"ca_file {self.account.ca_file} cannot be read: {exc}", "fix accounts.ca_file"
            ) from exc
        return urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _LimitedRedirects()
        )

    def _read_limited(self, stream: IO[bytes], headers: Message) -> bytes:
        limit = self.account.max_bytes
        declared = headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limit:  # a lying or absent Content-Length: stop reading at the limit
                raise self._too_large(size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_file(self, path: str) -> bytes:
        try:
            with open(path, "rb") as fh:
                return self._read_limited(fh, Message())
        except FileNotFoundError as exc:
            raise SourceProblem(
                f"calendar file {path} does not exist", "fix accounts.path"
            ) from exc
        except PermissionError as exc:
            raise SourceProblem(
                f"calendar file {path} is not readable", "grant read access"
            ) from exc
        except IsADirectoryError as exc:
            raise SourceProblem(
                f"{path} is a directory", "point accounts.path at a .ics file"
            ) from exc
        except OSError as exc:
            raise TransientError(f"cannot read {path}: {exc}") from exc

    def _too_large(self, size: int) -> SourceProblem:
        return SourceProblem(
            f"the feed at {self._where()} is over {self.account.max_bytes} bytes ({size} read)",
            "raise accounts.max_bytes if the feed is really this large",
        )

    def _http_error(self, exc: urllib.error.HTTPError) -> Exception:
        where, code = self._where(), exc.code
        if code in (401, 403):
            return AuthError(
                f"{where} refused the feed (HTTP {code})",
                "the feed's secret address may have been reset: copy the current one into "
                "accounts.url",
            )
        if code == 429 or code >= 500:
            retry = exc.headers.get("Retry-After", "") if exc.headers else ""
            return TransientError(
                f"{where} answered HTTP {code}", float(retry) if retry.isdigit() else None
            )
        if 300 <= code < 400:
            return SourceProblem(
                f"{where} redirected more than {MAX_REDIRECTS} times or in a loop",
                "use the feed's final address in accounts.url",
            )
        if code in (404, 410):
            return SourceProblem(f"no feed at {where} (HTTP {code})", "check accounts.url")
        return SourceProblem(f"{where} answered HTTP {code}", "check accounts.url")


class _LimitedRedirects(urllib.request.HTTPRedirectHandler):
    """At most MAX_REDIRECTS redirects, and never from https down to plain http."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 1  # an address seen twice is a loop: no need to go round it four times

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: http.client.HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        if req.full_url.lower().startswith("https:") and not newurl.lower().startswith("https:"):
            raise SourceProblem(
                "the feed redirected from https to an unencrypted address; refused",
                "use an https feed URL that stays on https",
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def https_url(url: str | None) -> str | None:
    """`webcal://host/…` -> `https://host/…`: webcal is a hint to open a calendar app, and the
    feed itself is served over https."""
    if url and url[:9].lower() == "webcal://":
        return "https://" + url[9:]
    return url


def _fresh(state: dict[str, Any], now: datetime) -> bool:
    """Whether the feed was expanded recently enough to trust an unchanged one."""
    try:
        expanded = datetime.fromisoformat(str(state["expanded"]))
        return timedelta(0) <= now - expanded < timedelta(days=REFRESH_DAYS)
    except (KeyError, ValueError, TypeError):
        return False


def _load(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
        if not isinstance(state, dict):
            raise TypeError("not an object")
        return state
    except (ValueError, TypeError) as exc:
        raise CursorExpired(f"unreadable ICS cursor: {exc}") from exc


def _dump(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)
