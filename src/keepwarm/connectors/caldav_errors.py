"""The caldav library's and its HTTP layer's errors, as ours: 401 AuthError with the fix, network
failures, timeouts, 429 and 5xx TransientError, a certificate that cannot be verified or an
address that is not a CalDAV server SourceProblem. Messages name the server, never a secret."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from keepwarm.connectors.base import SourceProblem
from keepwarm.errors import AuthError, TransientError

LOGIN_FIX = (
    "check accounts.username and the password; Fastmail, iCloud and accounts with two-factor "
    "sign-in need an app-specific password"
)


@contextmanager
def translated(where: str, username: str | None) -> Iterator[None]:
    """Run the body; re-raise what the library raises as our error about `where`."""
    from caldav.lib import error
    from caldav.lib.http_sync import requests
    from lxml.etree import XMLSyntaxError  # type: ignore[import-untyped]  # no hints

    try:
        yield
    except error.AuthorizationError as exc:
        if exc.status == 401 or exc.status is None:
            raise AuthError(
                f"{where} refused the login of {username!r} (HTTP 401)", LOGIN_FIX
            ) from exc
        raise AuthError(
            f"{where} refused access (HTTP {exc.status})",
            "check that accounts.username may read these calendars",
        ) from exc
    except error.RateLimitError as exc:
        raise TransientError(
            f"{where} asks to slow down (HTTP {exc.status or 429})", exc.retry_after_seconds
        ) from exc
    except error.NotFoundError as exc:
        raise SourceProblem(
            f"no CalDAV service at {where} (HTTP 404)",
            "set accounts.url to the server's CalDAV address",
        ) from exc
    except error.DAVError as exc:
        if (exc.status or 0) >= 500:
            raise TransientError(f"{where} answered HTTP {exc.status}") from exc
        raise SourceProblem(
            f"{where} refused a CalDAV request: {exc.reason}",
            "check that accounts.url is the server's CalDAV address",
        ) from exc
    except requests.exceptions.SSLError as exc:
        raise SourceProblem(
            f"a TLS connection to {where} failed: {_reason(exc)}",
            "if the server's certificate is signed by your own CA, set accounts.ca_file",
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TransientError(f"cannot reach {where}: {_reason(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise SourceProblem(f"a request to {where} failed: {_reason(exc)}") from exc
    except XMLSyntaxError as exc:
        raise SourceProblem(
            f"{where} did not answer with XML: not a CalDAV server?",
            "check that accounts.url is the server's CalDAV address",
        ) from exc


def shown(url: str) -> str:
    """The URL without credentials or query: what messages may show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return (text[:200] + "…") if len(text) > 200 else text or type(exc).__name__
