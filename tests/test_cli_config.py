"""`config check` and `init`: which file is read, what is wrong in it, and the exit codes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tests.cli_runner import run_cli
from tests.cli_world import World, world

MISTAKES = """\
[owner]
addresses = ["me@example.org"]

[model]
half_life_days = -3

[detect]
keep_subject = true

[[accounts]]
name = "home"
kind = "pop3"
"""


@pytest.fixture
def w(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> World:
    return world(tmp_path, capsys, monkeypatch)


def test_a_valid_config_passes_with_a_summary(w: World) -> None:
    w.maildir("home")
    w.calendar("calendar", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")
    w.write_config()
    run = w.ok("config", "check")
    assert run.out.startswith("config OK")
    assert str(w.config) in run.out
    assert "2 accounts" in run.out
    assert "warning" not in run.out


def test_every_mistake_is_listed_with_its_key_and_exit_2(w: World) -> None:
    w.config.write_text(MISTAKES, encoding="utf-8")
    run = w.cli("config", "check")
    assert run.code == 2
    assert run.out == ""
    assert "Traceback" not in run.err
    problems = [line.strip() for line in run.err.splitlines()]
    assert any(p.startswith("model.half_life_days:") and "-3" in p for p in problems)
    assert any(p.startswith("detect.keep_subject:") and "keep_subjects" in p for p in problems)
    assert any(p.startswith("accounts[0].kind:") and "pop3" in p for p in problems)
    # Every other command refuses the same file the same way.
    sync = w.cli("sync")
    assert sync.code == 2
    assert "accounts[0].kind" in sync.err


def test_a_missing_account_path_is_a_warning_not_an_error(w: World) -> None:
    w.maildir("home")
    w.write_config()
    (w.root / "home").rename(w.root / "elsewhere")
    run = w.ok("config", "check")
    assert f"warning: accounts[0].path: {w.root / 'home'} does not exist" in run.out


def test_a_missing_vcard_file_is_named_by_its_key(w: World) -> None:
    w.write_config(f'[contacts]\nvcards = ["{w.root / "people.vcf"}"]\n')
    for args in (("config", "check"), ("contacts",), ("sync",)):
        run = w.cli(*args)
        assert run.code == 2, args
        assert "contacts.vcards[0]" in run.err
        assert "Traceback" not in run.err


def test_the_config_file_comes_from_the_option_then_the_environment(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = w.cli("config", "check")  # --config names a file that is not there
    assert missing.code == 2
    assert str(w.config) in missing.err
    assert "Traceback" not in missing.err

    w.config.write_text(MISTAKES, encoding="utf-8")
    good = w.root / "good.toml"
    good.write_text('[owner]\naddresses = ["me@example.org"]\n', encoding="utf-8")
    monkeypatch.setenv("KEEPWARM_CONFIG", str(good))
    run = run_cli(w.capsys, "config", "check")
    assert run.code == 0, run.err
    assert str(good) in run.out
    # --config wins over the environment.
    assert w.cli("config", "check").code == 2

    monkeypatch.setenv("KEEPWARM_CONFIG", str(w.root / "gone.toml"))
    gone = run_cli(w.capsys, "config", "check")
    assert gone.code == 2
    assert "gone.toml" in gone.err
    assert "KEEPWARM_CONFIG" in gone.err


def test_init_writes_a_private_config_that_check_accepts(w: World) -> None:
    target = w.root / "etc" / "keepwarm.toml"
    run = run_cli(w.capsys, "init", str(target))
    assert run.code == 0, run.err
    assert str(target) in run.out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    check = run_cli(w.capsys, "--config", str(target), "config", "check")
    assert check.code == 0, check.err

    target.write_text("# my edits\n", encoding="utf-8")
    again = run_cli(w.capsys, "init", str(target))
    assert again.code == 2
    assert "--force" in again.err
    assert target.read_text(encoding="utf-8") == "# my edits\n"

    # Forcing over a file someone left world-readable leaves a private file.
    target.chmod(0o644)
    forced = run_cli(w.capsys, "init", "--force", str(target))
    assert forced.code == 0, forced.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "[owner]" in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["keepwarm.toml"]  # no temporary left


def test_init_without_a_path_writes_where_the_config_is_looked_for(w: World) -> None:
    run = run_cli(w.capsys, "init")
    assert run.code == 0, run.err
    written = w.root / "xdg-config" / "keepwarm" / "keepwarm.toml"
    assert written.is_file()
    # No --config and no $KEEPWARM_CONFIG: the file init wrote is the one found.
    check = run_cli(w.capsys, "config", "check")
    assert check.code == 0, check.err
    assert str(written) in check.out


def test_init_where_it_cannot_write_fails_with_a_message(w: World) -> None:
    blocker = w.root / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    run = run_cli(w.capsys, "init", str(blocker / "keepwarm.toml"))
    assert run.code == 1
    assert str(blocker / "keepwarm.toml") in run.err
    assert "Traceback" not in run.err
