"""What keepwarm keeps and says: no subjects or bodies unless asked, never a secret.

Logs are captured the way a service's journal would get them: stderr at `--log-level debug`.
The database is read as bytes, WAL file included, so nothing hides in a column nobody reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli_runner import Run
from tests.cli_world import ME, World, ago, world

SUBJECT = "Zanzibar-Quokka-7731"  # a string found nowhere else
BODY = "Marmalade-Heron-4410"
SECRET = "correct-horse-battery-9182"

MEETING = f"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:walk-1@test.example\r
DTSTAMP:{ago(30):%Y%m%dT%H%M%SZ}\r
DTSTART:{ago(6):%Y%m%dT%H%M%SZ}\r
DTEND:{ago(6 - 1 / 24):%Y%m%dT%H%M%SZ}\r
SUMMARY:{SUBJECT} walk\r
DESCRIPTION:{BODY}\r
LOCATION:{SUBJECT} park\r
ORGANIZER:mailto:{ME}\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:erin@walks.example\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ME}\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _world(w: World, keep_subjects: bool) -> World:
    """Ordinary mail, a list, an undated and an unparseable message, all carrying the markers."""
    w.maildir("home")
    w.exchange("Alice", "alice@friends.example", [30, 9], subject=f"Re: {SUBJECT}", body=BODY)
    w.mail("Stranger <s@else.example>", ME, ago(4), subject=SUBJECT, body=BODY)
    w.mail("List <l@lists.example>", ME, ago(3), subject=SUBJECT, body=BODY,
           headers=["List-Id: <l.lists.example>"])  # fmt: skip
    w.mail("Undated <u@else.example>", ME, None, subject=SUBJECT, body=BODY)
    bad = w.mail("Garbled <g@else.example>", ME, ago(2), subject=SUBJECT, body=BODY)
    bad.write_text(bad.read_text(encoding="utf-8").replace("Date: ", "Date: Blursday "))
    w.calendar("calendar", MEETING)
    w.write_config(f"[detect]\nkeep_subjects = {'true' if keep_subjects else 'false'}\n")
    return w


def _everything_said(w: World) -> list[Run]:
    """Sync at debug level, then every command that shows people, as a curious user would."""
    runs = [w.cli("--log-level", "debug", "sync")]
    commands = [
        ("status", "--format", "json"),
        ("contacts", "--format", "json"),
        ("show", "alice@friends.example", "--format", "json"),
        ("show", "s@else.example"),
        ("digest", "--format", "json"),
        ("digest", "--format", "html"),
        ("rebuild",),
    ]
    for args in commands:
        runs.append(w.cli("--log-level", "debug", *args))
    return runs


def _database_bytes(w: World) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(w.root.glob("kw.db*")))


@pytest.fixture
def w(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> World:
    return world(tmp_path, capsys, monkeypatch)


def test_without_keep_subjects_no_subject_or_body_is_logged_shown_or_stored(w: World) -> None:
    _world(w, keep_subjects=False)
    runs = _everything_said(w)
    assert runs[0].code == 0, runs[0].err
    # The sync did log at debug level (so silence below is not a logger that was off)...
    assert "account synced" in runs[0].err
    assert "message skipped" in runs[0].err
    for run in runs:
        assert run.code == 0, run.err
        # ...and no line anywhere carries the subject or the body.
        for line in (run.out + run.err).splitlines():
            assert SUBJECT not in line
            assert BODY not in line
    stored = _database_bytes(w)
    assert stored
    assert SUBJECT.encode() not in stored
    assert BODY.encode() not in stored


def test_with_keep_subjects_the_subject_is_stored_but_never_the_body(w: World) -> None:
    # The control: the same search finds the subject once the user asks for subjects to be kept.
    _world(w, keep_subjects=True)
    runs = _everything_said(w)
    assert all(run.code == 0 for run in runs), [run.err for run in runs]
    assert SUBJECT.encode() in _database_bytes(w)
    assert BODY.encode() not in _database_bytes(w)
    assert all(BODY not in run.out + run.err for run in runs)
    shown = w.ok("show", "alice@friends.example", "--format", "json").json()
    assert shown["timeline"][0]["subject"] == f"Re: {SUBJECT}"


def test_a_password_never_appears_in_what_keepwarm_says(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = w.root / "imap-password"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    monkeypatch.setenv("SMTP_PASSWORD", SECRET)
    w.maildir("home")
    w.exchange("Alice", "alice@friends.example", [9])
    work = (
        # Nothing listens on port 9 here: the account fails fast, with its password loaded.
        '[[accounts]]\nname = "work"\nkind = "imap"\nhost = "127.0.0.1"\nport = 9\n'
        f'username = "me"\npassword_file = "{secret_file}"\n'
    )
    smtp = '[smtp]\nhost = "smtp.example.org"\nusername = "me"\npassword_env = "SMTP_PASSWORD"\n'
    w.write_config(work + smtp)

    runs = [w.cli("--log-level", "debug", "config", "check")]
    assert runs[0].code == 0, runs[0].err
    # An account whose server cannot be reached fails alone; the Maildir is still read.
    runs.append(w.cli("--log-level", "debug", "sync"))
    assert runs[-1].code == 1
    assert "work: FAILED" in runs[-1].err
    assert "home: 2 read, 2 new touchpoints" in runs[-1].out
    runs.append(w.cli("--log-level", "debug", "status", "--format", "json"))
    accounts = {a["name"]: a for a in runs[-1].json()["accounts"]}
    assert "127.0.0.1:9" in accounts["work"]["error"]
    assert accounts["home"]["error"] is None

    # The same file with mistakes beside the secrets: the problems are named, the secrets not.
    # (plain text is refused off loopback, so the host moves off it for this check)
    mistaken = work.replace('"127.0.0.1"', '"imap.example.org"').replace("port = 9", "port = 0")
    w.write_config(mistaken + 'security = "none"\n' + smtp + "colour = 1\n")
    runs.append(w.cli("--log-level", "debug", "config", "check"))
    assert runs[-1].code == 2
    assert "accounts[1].port" in runs[-1].err
    assert "accounts[1].security" in runs[-1].err
    assert "smtp.colour" in runs[-1].err
    for run in runs:
        assert SECRET not in run.out + run.err
    assert SECRET.encode() not in _database_bytes(w)
