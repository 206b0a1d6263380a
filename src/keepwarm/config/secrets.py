"""Passwords and client secrets from a file, an environment variable or a command.

Secrets are read when a connection needs them, not when the config loads, so a rotated password
is picked up without a restart. Errors name the config key and the fix, never the value.
"""

from __future__ import annotations

import hmac
import os
import stat
import subprocess
from pathlib import Path

import structlog

from keepwarm.errors import UserError

COMMAND_TIMEOUT = 30.0  # seconds; a password manager waiting on a prompt must not hang a poll

# keepwarm.log.get_logger(name) raises TypeError (it passes logger= to structlog twice); use
# structlog directly, as the connectors do, until log.py is fixed.
_log = structlog.get_logger(__name__)


class Secret:
    """A string that hides itself from repr, str, logs and tracebacks; `.reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call this only where it is handed to a library."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(
    *, file: str | None, env: str | None, command: tuple[str, ...] | None, key: str
) -> str:
    """The secret from exactly one of `file`, `env` or `command`, one trailing newline removed.

    `key` is where the source is configured, e.g. `accounts[0].password` (or the full
    `accounts[0].password_file`); errors name the exact key, e.g. `accounts[0].password_file`.
    Raises `UserError` naming the key and the fix when the source is missing or fails.
    """
    stem = key.removesuffix("_file").removesuffix("_env").removesuffix("_command")
    given = [name for name, v in (("file", file), ("env", env), ("command", command)) if v]
    if len(given) != 1:
        section, _, name = stem.rpartition(".")
        choices = f"{name}_file, {name}_env or {name}_command"
        raise UserError(f"{section or stem}: set exactly one of {choices}")
    where = f"{stem}_{given[0]}"
    if file:
        value = _from_file(Path(file).expanduser(), where)
    elif env:
        if env not in os.environ:
            raise UserError(
                f"{where}: the environment variable {env} is not set; set it where keepwarm"
                " runs (for the service: Environment= or EnvironmentFile= in its unit)"
            )
        value = os.environ[env]
    else:
        value = _from_command(command or (), where)
    value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        raise UserError(f"{where}: the secret is empty; put the password there, nothing else")
    return value


def _from_file(path: Path, where: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"{where}: {path} does not exist; create it holding only the password"
            f" (chmod 600 {path}) or correct the path"
        ) from None
    except OSError as exc:
        raise UserError(
            f"{where}: cannot read {path}: {exc.strerror}; let the user keepwarm runs as read it"
        ) from None
    except UnicodeDecodeError:
        raise UserError(f"{where}: {path} is not UTF-8 text") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        _log.warning(
            "secret file is readable by other users",
            key=where,
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
            fix=f"chmod 600 {path}",
        )
    return text


def _from_command(command: tuple[str, ...], where: str) -> str:
    # Only the program name goes into messages: arguments may carry the secret itself.
    program = command[0]
    try:
        done = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise UserError(
            f"{where}: {program}: command not found; install it or give its full path"
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(
            f"{where}: {program} did not finish within {COMMAND_TIMEOUT:g} s;"
            " make sure it runs without waiting for input"
        ) from None
    except OSError as exc:
        raise UserError(f"{where}: cannot run {program}: {exc.strerror}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        said = f" ({lines[-1][:200]})" if lines else ""
        raise UserError(
            f"{where}: {program} failed with exit status {done.returncode}{said};"
            " run it by hand to see why"
        )
    try:
        return str(done.stdout.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{where}: {program} printed something that is not UTF-8 text") from None
