"""Hand a built message to the SMTP server: TLS verified, transient failures retried.

`smtp.security`: `tls` (implicit TLS, usually port 465), `starttls` (usually 587; the upgrade is
required: a server that does not offer it is an error, never a fall back to plain text) or
`none` (plain text, refused unless the host is loopback). Certificates are verified against the
system's CAs, or only `smtp.ca_file` when set; the host name must match the certificate.

The conversation is spelled out (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) rather than left to
`sendmail`, so the server's reply to DATA ("250 2.0.0 Ok: queued as 4Xb…") is returned and can
be recorded: that reply is the proof the server took responsibility for the message. Errors
after it (a failing QUIT) are ignored.

Failures: a 4xx reply, a refused or dropped connection and a timeout are transient and retried
with exponential backoff and jitter (tenacity); a 5xx reply, failed authentication, a
certificate that does not verify and a server without STARTTLS are permanent and reported at
once with what to change.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from keepwarm.config.schema import SmtpConfig
from keepwarm.config.secrets import read_secret
from keepwarm.errors import KeepwarmError
from keepwarm.hosts import is_loopback

log = structlog.get_logger(__name__)

# One conversation is at most this many commands, each waiting up to smtp.timeout.
COMMANDS = 8


class SendError(KeepwarmError):
    """The server did not accept the message. `permanent` failures will not pass on retry."""

    def __init__(self, message: str, *, permanent: bool, fix: str = "") -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.permanent = permanent
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently one delivery retries transient failures."""

    attempts: int = 3
    initial: float = 2.0  # seconds before the first retry; doubles after each
    maximum: float = 30.0  # the longest single wait
    jitter: float = 1.0  # up to this many seconds added at random to each wait

    def worst_case(self, timeout: float) -> float:
        """Seconds one delivery can take at most: every attempt timing out, every wait maxed."""
        waits = sum(
            min(self.initial * 2.0**i, self.maximum) + self.jitter for i in range(self.attempts - 1)
        )
        return self.attempts * COMMANDS * timeout + waits


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the server said when it accepted the message."""

    reply: str  # e.g. "250 2.0.0 Ok: queued as 4XbCd"
    attempts: int


def deliver(
    raw: bytes,
    *,
    sender: str,
    recipient: str,
    smtp: SmtpConfig,
    smtputf8: bool = False,
    retry: Retry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send `raw` from `sender` to `recipient` (bare addresses); raise `SendError` on failure.

    The password is read (from smtp.password_file/env/command) once per delivery, so a rotated
    password is picked up; a missing source raises `UserError` naming the key.
    """
    policy = retry or Retry()
    if not smtp.host:
        raise SendError("smtp.host is not set", permanent=True, fix="set [smtp] host")
    if smtp.security == "none" and not is_loopback(smtp.host):
        raise SendError(
            f"smtp.security = none would send in plain text to {smtp.host}",
            permanent=True,
            fix='use "starttls" or "tls"; "none" is only for a relay on this machine',
        )
    password = None
    if smtp.username:
        password = read_secret(
            file=smtp.password_file,
            env=smtp.password_env,
            command=smtp.password_command,
            key="smtp.password",
        )
    # Imported by a send, not with the module: the daemon imports this for its digest check.
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
        wait_random,
    )

    attempts = 0

    def once() -> str:
        nonlocal attempts
        attempts += 1
        return _converse(raw, sender, recipient, smtp, password, smtputf8)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        # wait_exponential: initial, 2×initial, … (multiplier × 2^(n-1)), plus random jitter.
        wait=wait_exponential(multiplier=policy.initial, max=policy.maximum)
        + wait_random(0, policy.jitter),
        retry=retry_if_exception(lambda e: isinstance(e, SendError) and not e.permanent),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: log.warning(
            "smtp send failed; retrying",
            host=smtp.host,
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
    )
    reply = retrying(once)
    return Delivery(reply=reply, attempts=attempts)


def tls_context(smtp: SmtpConfig) -> ssl.SSLContext:
    """Verification on, host name checked; only `smtp.ca_file` trusted when it is set."""
    try:
        return ssl.create_default_context(cafile=smtp.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SendError(
            f"smtp.ca_file: cannot load {smtp.ca_file}: {exc}",
            permanent=True,
            fix="point it at a PEM file of the CA certificate(s) to trust",
        ) from None


def _converse(
    raw: bytes,
    sender: str,
    recipient: str,
    smtp: SmtpConfig,
    password: str | None,
    smtputf8: bool,
) -> str:
    host, port = smtp.host or "", smtp.port
    where = f"{host}:{port}"
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=smtp.timeout, context=tls_context(smtp)
            )
        else:
            client = smtplib.SMTP(host, port, timeout=smtp.timeout)
    except Exception as exc:
        raise _classify(exc, where, "connecting") from None
    try:
        stage = "greeting"
        try:
            client.ehlo_or_helo_if_needed()
            if smtp.security == "starttls":
                stage = "STARTTLS"
                if not client.has_extn("starttls"):
                    raise SendError(
                        f"{where} does not offer STARTTLS",
                        permanent=True,
                        fix='use security = "tls" with its implicit-TLS port (often 465)',
                    )
                client.starttls(context=tls_context(smtp))
                client.ehlo()
            if smtp.username:
                stage = "AUTH"
                client.login(smtp.username, password or "")
            stage = "MAIL FROM"
            options = ["SMTPUTF8"] if smtputf8 else []
            _expect(client.mail(sender, options), (250,), where, stage)
            stage = "RCPT TO"
            _expect(client.rcpt(recipient), (250, 251), where, stage)
            stage = "DATA"
            # data() raises only when DATA itself is refused; the verdict on the message is
            # the reply after it, which may be a 4xx or 5xx too.
            code, text = client.data(raw)
            _expect((code, text), (250,), where, stage)
        except SendError:
            raise
        except Exception as exc:
            raise _classify(exc, where, stage) from None
        reply = f"{code} {_text(text)}"
        log.info("smtp server accepted the digest", host=host, reply=reply)
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()  # accepted is accepted; a failing goodbye changes nothing
        return reply
    finally:
        client.close()


def _expect(answer: tuple[int, bytes], ok: tuple[int, ...], where: str, stage: str) -> None:
    code, text = answer
    if code not in ok:
        raise _reply_error(code, text, where, stage)


def _reply_error(code: int, text: bytes | str, where: str, stage: str) -> SendError:
    said = f"{code} {_text(text)}"
    if 400 <= code < 500 or code == -1:
        return SendError(f"{where} deferred at {stage}: {said}", permanent=False)
    return SendError(f"{where} refused at {stage}: {said}", permanent=True)


def _classify(exc: BaseException, where: str, stage: str) -> SendError:
    """Turn smtplib, ssl and socket errors into a transient or permanent `SendError`."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendError(
            f"{where} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}",
            permanent=True,
            fix="check smtp.username and the password (smtp.password_file/env/command)",
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendError(
            f"{where} does not support {stage}: {exc}",
            permanent=True,
            fix="remove smtp.username if the server needs no login, or use another port",
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendError(f"{where} closed the connection during {stage}", permanent=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_error(exc.smtp_code, exc.smtp_error, where, stage)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendError(
            f"{where}: the server's certificate does not verify ({exc.verify_message})",
            permanent=True,
            fix="set smtp.ca_file to the CA that signed it (or fix the server's certificate)",
        )
    if isinstance(exc, ssl.SSLError):
        return SendError(
            f"{where}: TLS failed during {stage} ({exc.reason or exc})",
            permanent=True,
            fix='check smtp.security and smtp.port: "tls" is implicit TLS (often 465), '
            '"starttls" upgrades a plain connection (often 587)',
        )
    if isinstance(exc, TimeoutError):
        return SendError(f"{where} did not answer within {stage} (timeout)", permanent=False)
    if isinstance(exc, OSError):
        return SendError(f"{where}: {stage} failed: {exc.strerror or exc}", permanent=False)
    if isinstance(exc, smtplib.SMTPException):
        return SendError(f"{where}: {stage} failed: {exc}", permanent=True)
    raise exc


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split())
