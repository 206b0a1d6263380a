"""A private Dovecot (Debian `dovecot-imapd`) per test session, and helpers to drive it.

Use it as a plugin: `pytest_plugins = ("tests.servers.dovecot",)` in a test module, then ask
for the `dovecot` fixture. It listens on 127.0.0.1 with plain text + STARTTLS on one port and
implicit TLS on another (a self-signed certificate for 127.0.0.1, `dovecot.ca_file`), accepts
passwords (passwd-file) and XOAUTH2 / OAUTHBEARER tokens (the oauth2 passdb asks a local
token-introspection endpoint this module runs: tokens it issued, or those an issuer such as the
Google or Microsoft emulator vouches for inside `dovecot.trusting(...)`), keeps Maildirs under
its own temp dir and is killed with its whole process group at the end; it also dies with the
test process (Linux parent-death signal), so even a killed test run leaves nothing behind.

Every test takes a fresh user (`dovecot.add_user()`), so tests share the server but no mail.
The settings follow ../shared/TESTING.md (measured facts about running Dovecot here).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from imapclient import IMAPClient

INSTALL_HINT = (
    "Dovecot is needed for the IMAP tests: install Debian's dovecot-imapd"
    " (scripts/install-test-deps.sh does it)"
)
_PR_SET_PDEATHSIG = 1
USER_BLOCK = 200


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ImapUser:
    username: str
    password: str


class _Introspection(BaseHTTPRequestHandler):
    """OAuth2 token introspection (RFC 7662) as Dovecot's oauth2 passdb calls it."""

    tokens: dict[str, str]  # token -> username; set on the subclass each server makes
    calls: list[str]
    issuers: list[Callable[[str], str | None]]  # token -> username, or None: not theirs

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        token = form.get("token", [""])[0]
        self.calls.append(token)
        user = self.tokens.get(token)
        for issuer in list(self.issuers):
            user = user or issuer(token)
        body = json.dumps({"active": True, "username": user} if user else {"active": False})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the server's stderr otherwise."""


class Dovecot:
    """One running Dovecot; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self, root: Path, homes: Path | None = None) -> None:
        self.root = root
        self.homes = homes or root / "home"  # a benchmark keeps its big mailboxes elsewhere
        self.port = free_port()
        self.tls_port = free_port()
        self.config = root / "dovecot.conf"
        self.passwd = root / "passwd"
        self.ca_file = str(root / "cert.pem")
        self._users = 0
        self._pool: list[ImapUser] = []
        self._process: subprocess.Popen[bytes] | None = None
        tokens: dict[str, str] = {}
        calls: list[str] = []
        issuers: list[Callable[[str], str | None]] = []
        handler = type(
            "Introspection",
            (_Introspection,),
            {"tokens": tokens, "calls": calls, "issuers": issuers},
        )
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.tokens, self.introspections, self._issuers = tokens, calls, issuers
        if os.geteuid() == 0:
            # imap-login refuses to run as root; mail belongs to an unprivileged uid.
            self.login_user, self.internal_user, mail = "dovenull", "dovecot", "nobody"
        else:
            self.login_user = self.internal_user = mail = pwd.getpwuid(os.geteuid()).pw_name
        entry = pwd.getpwnam(mail)
        self.mail_uid, self.mail_gid = entry.pw_uid, entry.pw_gid

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        binary = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
        )
        if binary is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        self._certificate()
        self.passwd.write_text("")
        self._write_users(USER_BLOCK)
        self.homes.mkdir(exist_ok=True)
        os.chown(self.homes, self.mail_uid, self.mail_gid)
        self.config.write_text(self._config_text())
        (self.root / "oauth2.conf.ext").write_text(self._oauth2_text())
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: killpg takes auth, login and imap too
            preexec_fn=_die_with_parent,
        )
        # Threads only after the fork: the child runs Python code (prctl) before exec.
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 20
        while not (self._answers(self.port) and self._answers(self.tls_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.root / "dovecot.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Dovecot did not start:\n{log}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        self._http.shutdown()
        self._http.server_close()

    def _answers(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _certificate(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(self.root / "key.pem"), "-out", self.ca_file,
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip

    def _config_text(self) -> str:
        root = self.root
        return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
default_login_user = {self.login_user}
default_internal_user = {self.internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.homes}/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port}
    ssl = yes
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
  mailbox "[Gmail]/All Mail" {{
    special_use = \\All
  }}
  mailbox "[Gmail]/Sent Mail" {{
    special_use = \\Sent
  }}
}}
"""

    def _oauth2_text(self) -> str:
        port = self._http.server_address[1]
        return (
            "introspection_mode = post\n"
            f"introspection_url = http://127.0.0.1:{port}/introspect\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )

    # -- users and tokens --------------------------------------------------------------------

    def add_user(self) -> ImapUser:
        """A user nobody used before: an empty mailbox."""
        if not self._pool:
            # Dovecot looks at the passwd-file at most once a second: users written just now
            # may not log in yet, so they are written in blocks, a second ahead of their use.
            self._write_users(USER_BLOCK)
            time.sleep(1.1)
        return self._pool.pop(0)

    def _write_users(self, count: int) -> None:
        fresh = []
        for _ in range(count):
            self._users += 1
            fresh.append(ImapUser(f"user{self._users}", secrets.token_urlsafe(12)))
        with self.passwd.open("a") as out:
            out.writelines(f"{u.username}:{{PLAIN}}{u.password}\n" for u in fresh)
        self._pool.extend(fresh)

    def issue_token(self, user: ImapUser) -> str:
        """An OAuth2 access token the server accepts for `user` until revoked."""
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens[token] = user.username
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    @contextlib.contextmanager
    def trusting(self, issuer: Callable[[str], str | None]) -> Iterator[None]:
        """Within the block, also let in whoever `issuer` says a token belongs to (it returns
        the IMAP username, or None): tokens of another identity provider, as Gmail's and
        Outlook's IMAP accept those of Google's and Microsoft's sign-in."""
        self._issuers.append(issuer)
        try:
            yield
        finally:
            self._issuers.remove(issuer)

    # -- mail --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def client(self, user: ImapUser) -> Iterator[IMAPClient]:
        """A logged-in IMAP connection of the test itself (not of the code under test)."""
        with IMAPClient(self.host, self.port, ssl=False, timeout=30) as client:
            client.login(user.username, user.password)
            yield client

    def append(
        self,
        user: ImapUser,
        messages: Iterable[bytes],
        folder: str = "INBOX",
        *,
        flags: tuple[str, ...] = (),
        when: datetime | None = None,
    ) -> None:
        """Deliver messages with MULTIAPPEND (thousands a second), creating the folder."""
        extra: dict[str, Any] = {"flags": flags, **({"date": when} if when else {})}
        items: list[Any] = [{"msg": m, **extra} for m in messages]
        with self.client(user) as client:
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(items), 1000):
                client.multiappend(folder, items[start : start + 1000])

    def recreate_folder(self, user: ImapUser, folder: str) -> None:
        """Delete `folder` and create it again with the same messages, flags and arrival
        dates: what a server restore or a client "repair" does. Gives a new UIDVALIDITY."""
        with self.client(user) as client:
            client.normalise_times = False  # arrival dates with their zone, as stored
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            found = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
            items: list[Any] = [
                {
                    "msg": m[b"BODY[]"],
                    "date": m[b"INTERNALDATE"],
                    "flags": [f for f in m[b"FLAGS"] if f.lower() != b"\\recent"],
                }
                for _, m in sorted(found.items())
            ]
            client.unselect_folder()
            client.delete_folder(folder)
            client.create_folder(folder)
            if items:
                client.multiappend(folder, items)

    def uidvalidity(self, user: ImapUser, folder: str) -> int:
        with self.client(user) as client:
            value: int = client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]
            return value

    def kick(self, user: ImapUser) -> None:
        """Drop every connection of `user` (doveadm kick), as a server restart would."""
        done = subprocess.run(
            ["doveadm", "-c", str(self.config), "kick", user.username],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 68):  # 68 (EX_NOUSER): nobody was connected
            raise RuntimeError(f"doveadm kick failed ({done.returncode}): {done.stderr}")
        # Kicking signals the imap processes; wait until they are gone (BYE sent, socket shut).
        deadline = time.monotonic() + 10
        while self.connections(user) and time.monotonic() < deadline:
            time.sleep(0.05)

    def connections(self, user: ImapUser) -> int:
        """How many IMAP sessions `user` has open (doveadm who)."""
        done = subprocess.run(
            ["doveadm", "-c", str(self.config), "who", "-1", user.username],
            check=False,
            capture_output=True,
            text=True,
        )
        return sum(1 for line in done.stdout.splitlines() if line.split()[:1] == [user.username])

    def write_maildir(
        self, user: ImapUser, messages: Iterable[tuple[bytes, float]], folder: str = "INBOX"
    ) -> int:
        """Write (message, Date as epoch seconds) straight into the user's Maildir `cur/`.

        About 11k messages/s, several times faster than APPEND for big mailboxes; Dovecot
        gives them UIDs at the next SELECT, and the mtime becomes their INTERNALDATE.
        """
        home = self.homes / user.username
        maildir = home / "Maildir"
        path = maildir if folder == "INBOX" else maildir / ("." + folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        count = 0
        pid = os.getpid()
        for count, (data, stamp) in enumerate(messages, 1):
            target = path / "cur" / f"{int(stamp)}.M{count}P{pid}.kw,S={len(data)}:2,S"
            target.write_bytes(data)
            os.utime(target, (stamp, stamp))
        self.give_home(user)
        return count

    def give_home(self, user: ImapUser) -> None:
        """Make everything in the user's home the mail user's (after writing files into it)."""
        for directory, _, files in os.walk(self.homes / user.username):
            os.chown(directory, self.mail_uid, self.mail_gid)
            for name in files:
                os.chown(os.path.join(directory, name), self.mail_uid, self.mail_gid)


def _remove_abandoned(tmp: Path) -> None:
    """Temp dirs of test runs that were killed (their Dovecot died with them) go."""
    for root in tmp.glob("keepwarm-dovecot-*"):
        try:
            if time.time() - root.stat().st_mtime < 600:
                continue  # perhaps still starting
            pid = int((root / "run" / "master.pid").read_text())
            os.kill(pid, 0)  # alive: someone's running server
        except (OSError, ValueError):
            shutil.rmtree(root, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (Linux prctl)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


try:  # loaded here, not in the forked child
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


@contextlib.contextmanager
def running_dovecot(homes: Path | None = None) -> Iterator[Dovecot]:
    """Start a private Dovecot under a new temp dir; stop it and remove the dir at the end.

    `homes`: where the users' homes live (default: inside the temp dir); a benchmark passes
    a directory it keeps, so a big mailbox and its index survive between runs.
    """
    # Not under pytest's tmp dir: that is 0700 and the unprivileged mail and login users
    # must reach their homes and the login sockets.
    _remove_abandoned(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix="keepwarm-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root, homes)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's private Dovecot."""
    with running_dovecot() as server:
        yield server
