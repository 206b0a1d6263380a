"""Private aiosmtpd servers per test session: plain, STARTTLS with AUTH, implicit TLS with AUTH.

Use it as a plugin: `pytest_plugins = ("tests.servers.smtp",)` in a test module, then ask for
`smtp_plain`, `smtp_starttls` or `smtp_tls`. Each is a real SMTP server (aiosmtpd, in a thread
of the test process, so it ends with it) on a free 127.0.0.1 port; the TLS ones use a self-signed
certificate for 127.0.0.1 made with openssl (`server.ca_file`). The function-scoped fixtures
hand out the session's server with an empty mailbox and no script.

`server.script` makes the next DATA commands misbehave, one action per DATA, in order:
- "451": a transient refusal (4xx) after the message was received; nothing is kept.
- "554": a permanent refusal (5xx); nothing is kept.
- "drop": the connection is cut after the message arrived, with no reply; nothing is kept.
- "accept-drop": the message is kept, then the connection is cut before the reply: the client
  cannot know the server took it.
- "hold": the message is kept, `server.holding` is set, and the reply waits until
  `server.release` is set (so a test can kill the client in between).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from keepwarm.config.schema import SmtpConfig

USERNAME = "keepwarm"
PASSWORD = "correct horse battery staple"
INSTALL_HINT = "openssl is needed for the SMTP TLS tests: install Debian's openssl"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    """One message the server accepted (or kept before cutting the connection)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The message as a mail client reads it."""
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """The aiosmtpd handler: keeps what arrives, misbehaves as scripted."""

    received: list[Received] = field(default_factory=list)
    script: deque[str] = field(default_factory=deque)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    attempted: list[bytes] = field(default_factory=list)  # every message that reached DATA
    data_commands: int = 0

    def reset(self) -> None:
        self.received.clear()
        self.script.clear()
        self.holding.clear()
        self.release.clear()
        self.attempted.clear()
        self.data_commands = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        self.attempted.append(envelope.original_content)
        action = self.script.popleft() if self.script else "accept"
        keep = Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
        if action == "451":
            return "451 4.3.0 Mail server temporarily unavailable, try again later"
        if action == "554":
            return "554 5.7.1 Message rejected by policy"
        if action in ("drop", "accept-drop"):
            if action == "accept-drop":
                self.received.append(keep)
            server.transport.abort()
            return "421 closing"  # never reaches the client: the connection is gone
        self.received.append(keep)
        if action == "hold":
            self.holding.set()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.release.wait, 60)
        return f"250 2.0.0 Ok: queued as KW{len(self.received):04d}"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    if (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    ):
        return AuthResult(success=True)
    # handled=False: aiosmtpd then answers 535; with the default it would answer nothing.
    return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    security: str  # what a client sets as smtp.security
    recorder: Recorder
    ca_file: Path | None = None
    auth: bool = False

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    @property
    def script(self) -> deque[str]:
        return self.recorder.script

    @property
    def holding(self) -> threading.Event:
        return self.recorder.holding

    @property
    def release(self) -> threading.Event:
        return self.recorder.release

    def config(self, **override: Any) -> SmtpConfig:
        """An `[smtp]` section for this server; the password comes from KEEPWARM_TEST_SMTP."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "timeout": 10.0,
        }
        if self.auth:
            values |= {"username": USERNAME, "password_env": "KEEPWARM_TEST_SMTP"}
        return SmtpConfig(**(values | override))

    def toml(self, password_file: Path | None = None) -> str:
        """The same `[smtp]` section as TOML text, with the password in `password_file`."""
        lines = ["[smtp]", f'host = "{self.host}"', f"port = {self.port}"]
        lines += [f'security = "{self.security}"', "timeout = 10"]
        if self.ca_file:
            lines.append(f'ca_file = "{self.ca_file}"')
        if self.auth:
            assert password_file is not None, "this server needs a password file"
            lines += [f'username = "{USERNAME}"', f'password_file = "{password_file}"']
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (the certificate is its own CA)."""
    if shutil.which("openssl") is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    root = tmp_path_factory.mktemp("smtp-tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


class _Controller(Controller):  # type: ignore[misc]
    def factory(self) -> Any:
        # Implicit TLS with AUTH: aiosmtpd's TLS check knows only STARTTLS, so it must be off,
        # and it warns about that on every connection although the whole session is TLS.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


def _start(security: str, cert: tuple[Path, Path] | None) -> Iterator[SmtpServer]:
    recorder = Recorder()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if security == "starttls" and cert:
        kwargs = {
            "tls_context": _server_context(cert),
            "require_starttls": True,
            "authenticator": _authenticate,
            "auth_require_tls": True,
            "auth_required": True,
        }
    elif security == "tls" and cert:
        kwargs = {
            "ssl_context": _server_context(cert),
            "authenticator": _authenticate,
            "auth_require_tls": False,  # the whole connection is TLS already
            "auth_required": True,
        }
    controller = _Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(
            "127.0.0.1",
            port,
            security,
            recorder,
            ca_file=cert[0] if cert else None,
            auth=cert is not None,
        )
    finally:
        recorder.release.set()  # a held DATA must not keep the loop from stopping
        controller.stop()


@pytest.fixture(scope="session")
def _smtp_plain_server() -> Iterator[SmtpServer]:
    yield from _start("none", None)


@pytest.fixture(scope="session")
def _smtp_starttls_server(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    yield from _start("starttls", smtp_cert)


@pytest.fixture(scope="session")
def _smtp_tls_server(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    yield from _start("tls", smtp_cert)


def _fresh(server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    server.recorder.reset()
    monkeypatch.setenv("KEEPWARM_TEST_SMTP", PASSWORD)
    return server


@pytest.fixture
def smtp_plain(_smtp_plain_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    """Plain text on loopback, no AUTH: what `security = "none"` is allowed to talk to."""
    return _fresh(_smtp_plain_server, monkeypatch)


@pytest.fixture
def smtp_starttls(_smtp_starttls_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    """STARTTLS required before AUTH (LOGIN/PLAIN), self-signed certificate."""
    return _fresh(_smtp_starttls_server, monkeypatch)


@pytest.fixture
def smtp_tls(_smtp_tls_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    """Implicit TLS (the port speaks TLS from the first byte) with AUTH."""
    return _fresh(_smtp_tls_server, monkeypatch)
