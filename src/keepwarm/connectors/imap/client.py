"""One IMAP connection: TLS, STARTTLS or plain text (loopback only), a password or XOAUTH2 login,
and the library's errors turned into ours.

`session()` is the context manager that always logs out; `connect()` gives a connection the
caller keeps (the connector holds one between polls) and `disconnect()` ends it quietly.
`imap_errors()` wraps everything that talks to the server: dropped connections, `BYE`, timeouts
and half-read responses become `TransientError`; refused credentials `AuthError`; an untrusted
certificate or a server that cannot do what the config asks `SourceProblem`.
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
from collections.abc import Iterator

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import CapabilityError, LoginError

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import SourceProblem
from keepwarm.connectors.imap.tokens import TokenProvider
from keepwarm.errors import AuthError, TransientError
from keepwarm.hosts import is_loopback

CONNECT_TIMEOUT = 30.0  # at most: a shorter read timeout shortens it too
# `connect()`'s default; the connector passes the account's `timeout` (60 s unless set).
READ_TIMEOUT = 180.0
# Response codes (RFC 5530) that say "try again later" rather than "wrong credentials".
_TEMPORARY_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


def default_port(account: AccountConfig) -> int:
    return account.port or (993 if account.security == "tls" else 143)


def tls_context(account: AccountConfig) -> ssl.SSLContext:
    """Certificate and host name checked; `ca_file` replaces the system store when set."""
    try:
        return ssl.create_default_context(cafile=account.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SourceProblem(
            f"cannot load ca_file {account.ca_file}: {exc}",
            fix="point ca_file at a PEM file with the CA certificate(s)",
        ) from None


@contextlib.contextmanager
def imap_errors(account: AccountConfig, *, connecting: bool = False) -> Iterator[None]:
    """Translate imapclient / imaplib / socket / TLS errors into keepwarm's error families."""
    where = f"{account.host}:{default_port(account)}"
    try:
        yield
    except LoginError as exc:
        if isinstance(exc.__context__, imaplib.IMAP4.abort):
            # imapclient wraps every IMAP4.error of a login in LoginError, `abort` too: a
            # connection that ended (EOF, BYE, a cut line) while the login's answer was on its
            # way is bad luck, not bad credentials, and must not park the account.
            lost = exc.__context__
            raise TransientError(f"{where}: connection lost while logging in ({lost})") from None
        text = _server_text(exc)
        if any(code in text.upper() for code in _TEMPORARY_CODES):
            raise TransientError(f"{where} cannot log in right now: {text}") from None
        raise AuthError(f"{where} refused the login: {text}", fix=_login_fix(account)) from None
    except CapabilityError as exc:
        raise SourceProblem(f"{where}: {exc}", fix=_security_fix(account)) from None
    except ssl.SSLCertVerificationError as exc:
        raise SourceProblem(
            f"{where}: the server's certificate is not trusted ({exc.verify_message})",
            fix="set ca_file to the CA that signed it (or fix the server's certificate)",
        ) from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        raise TransientError(f"{where}: the connection was closed ({exc})") from None
    except ssl.SSLError as exc:
        if connecting:  # a handshake that fails is a setting, not bad luck: TLS to a plain port
            raise SourceProblem(
                f"{where}: TLS failed ({exc})", fix=_security_fix(account)
            ) from None
        raise TransientError(f"{where}: TLS error ({exc})") from None
    except imaplib.IMAP4.abort as exc:  # BYE, EOF, half-read responses
        raise TransientError(f"{where}: connection lost ({exc})") from None
    except TimeoutError as exc:
        # While connecting, silence is also what TLS to a STARTTLS port (or the reverse) gets.
        hint = f"; {_security_fix(account)}" if connecting else ""
        raise TransientError(f"{where}: the server did not answer in time ({exc}){hint}") from None
    except OSError as exc:
        raise TransientError(f"{where}: {exc.strerror or exc}") from None
    except imaplib.IMAP4.error as exc:  # a NO or BAD the caller did not expect
        raise TransientError(f"{where}: {exc}") from None


def connect(
    account: AccountConfig, token: TokenProvider | None, *, read_timeout: float = READ_TIMEOUT
) -> IMAPClient:
    """A logged-in connection. `token` supplies the XOAUTH2 access token (auth = "xoauth2")
    or the password; it is called once per login, never stored. A server that sends nothing
    for `read_timeout` seconds in the middle of an answer is given up on (TransientError), and
    so is one that sends no greeting within that time (or CONNECT_TIMEOUT, if shorter)."""
    if account.security == "none" and not is_loopback(account.host or ""):
        raise SourceProblem(
            f"refusing plain-text IMAP to {account.host}", fix=_security_fix(account)
        )
    context = tls_context(account) if account.security != "none" else None
    with imap_errors(account, connecting=True):
        client = IMAPClient(
            account.host or "",
            default_port(account),
            ssl=account.security == "tls",
            ssl_context=context,
            # The greeting is read under the connect timeout: a server that accepts and then
            # says nothing must not outlast the read timeout the account asked for.
            timeout=SocketTimeout(connect=min(CONNECT_TIMEOUT, read_timeout), read=read_timeout),
        )
    try:
        # imapclient turns on imaplib's line-by-line debug output (to its logger): that would
        # format every header line we read (slow) and could put addresses into logs.
        client._imap.debug = 0
        with imap_errors(account, connecting=True):
            if account.security == "starttls":
                client.starttls(context)
        with imap_errors(account):
            _login(client, account, token)
    except BaseException:
        disconnect(client)
        raise
    return client


def disconnect(client: IMAPClient) -> None:
    """Log out, or at least close the socket; never raises (the connection may be dead)."""
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


@contextlib.contextmanager
def session(
    account: AccountConfig, token: TokenProvider | None, *, read_timeout: float = READ_TIMEOUT
) -> Iterator[IMAPClient]:
    """A logged-in connection for the `with` block, logged out however the block ends."""
    client = connect(account, token, read_timeout=read_timeout)
    try:
        yield client
    finally:
        disconnect(client)


def capabilities(client: IMAPClient) -> frozenset[bytes]:
    return frozenset(client.capabilities())


def _login(client: IMAPClient, account: AccountConfig, token: TokenProvider | None) -> None:
    user = account.username or ""
    caps = capabilities(client)
    if account.auth == "xoauth2":
        if token is None:
            raise AuthError("no access token source for XOAUTH2", fix=_login_fix(account))
        access = token()
        if b"AUTH=XOAUTH2" in caps:
            client.sasl_login("XOAUTH2", _Bearer(f"user={user}\1auth=Bearer {access}\1\1"))
        elif b"AUTH=OAUTHBEARER" in caps:
            identity = user.replace("=", "=3D").replace(",", "=2C")
            client.sasl_login("OAUTHBEARER", _Bearer(f"n,a={identity},\1auth=Bearer {access}\1\1"))
        else:
            raise SourceProblem(
                f"{account.host} offers neither XOAUTH2 nor OAUTHBEARER",
                fix='use auth = "password" for this server',
            )
        return
    if token is None:
        raise AuthError("no password source", fix=_login_fix(account))
    password = token()
    if (user + password).isascii() and b"LOGINDISABLED" not in caps:
        client.login(user, password)
    elif b"AUTH=PLAIN" in caps:  # LOGIN cannot carry non-ASCII; SASL PLAIN is UTF-8
        client.plain_login(user, password)
    else:
        raise AuthError(
            f"{account.host} accepts no login this client can send (LOGINDISABLED, or a"
            " non-ASCII password without AUTH=PLAIN)",
            fix=_security_fix(account),
        )


class _Bearer:
    """SASL client for XOAUTH2 / OAUTHBEARER: the token first; on the server's error challenge
    an empty (XOAUTH2) or ^A (OAUTHBEARER) answer, so that the server sends its NO."""

    def __init__(self, initial: str) -> None:
        self._initial = initial
        self._sent = False

    def __call__(self, challenge: bytes) -> str:
        if self._sent:
            return "\1" if self._initial.startswith("n,") else ""
        self._sent = True
        return self._initial

    def __repr__(self) -> str:
        return "_Bearer('***')"


def _server_text(exc: Exception) -> str:
    """The server's words from an imapclient error (which often shows them as a bytes repr)."""
    text = str(exc)
    if len(text) > 2 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    return text


def _login_fix(account: AccountConfig) -> str:
    if account.auth == "xoauth2":
        if account.oauth_provider:
            return f"sign in again: keepwarm auth {account.oauth_provider} {account.name}"
        return "check that password_command prints a current access token for username"
    return "check username and the password in password_file / password_env / password_command"


def _security_fix(account: AccountConfig) -> str:
    port = default_port(account)
    return (
        f"check security ({account.security}) against port {port}: 993 is usually tls, 143 starttls"
    )
