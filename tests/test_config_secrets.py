"""Secrets from a file, an env variable or a command; failures name the key, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from keepwarm.config import secrets
from keepwarm.config.secrets import Secret, read_secret
from keepwarm.errors import UserError

KEY = "accounts[0].password"


def from_file(path: Path, key: str = KEY) -> str:
    return read_secret(file=str(path), env=None, command=None, key=key)


def from_env(name: str, key: str = KEY) -> str:
    return read_secret(file=None, env=name, command=None, key=key)


def from_command(*argv: str, key: str = KEY) -> str:
    return read_secret(file=None, env=None, command=argv, key=key)


def private_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "password"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"s3cret\n", "s3cret"), (b"s3cret", "s3cret"), (b"s3cret\r\n", "s3cret"),
     (b"s3cret\n\n", "s3cret\n"), (b" pass word \n", " pass word ")],
)  # fmt: skip
def test_file_loses_exactly_one_trailing_newline(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    assert from_file(private_file(tmp_path, content)) == expected


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPWARM_TEST_PW", "s3cret\n")
    assert from_env("KEEPWARM_TEST_PW") == "s3cret"


def test_command_output_is_the_secret() -> None:
    assert from_command("sh", "-c", "printf 's3cret\\n'") == "s3cret"


def test_a_full_key_is_accepted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEPWARM_TEST_UNSET", raising=False)
    with pytest.raises(UserError, match=r"^smtp\.password_env: "):
        from_env("KEEPWARM_TEST_UNSET", key="smtp.password_file")


def test_missing_file_names_the_key_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        from_file(tmp_path / "nope")
    message = str(info.value)
    assert message.startswith("accounts[0].password_file: ")
    assert str(tmp_path / "nope") in message
    assert "create it holding only the password" in message


def test_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^accounts\[0\]\.password_file: cannot read"):
        from_file(tmp_path)  # a directory


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^accounts\[0\]\.password_file: the secret is empty"):
        from_file(private_file(tmp_path, b"\n"))


def test_unset_env_names_the_key_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEPWARM_TEST_UNSET", raising=False)
    with pytest.raises(UserError) as info:
        from_env("KEEPWARM_TEST_UNSET")
    message = str(info.value)
    assert message.startswith("accounts[0].password_env: the environment variable")
    assert "KEEPWARM_TEST_UNSET is not set" in message


def test_failing_command_names_key_and_status_but_never_the_secret() -> None:
    with pytest.raises(UserError) as info:
        from_command("sh", "-c", "printf hunter2; echo 'gpg: decryption failed' >&2; exit 3")
    message = str(info.value)
    assert message.startswith("accounts[0].password_command: sh failed with exit status 3")
    assert "gpg: decryption failed" in message
    assert "hunter2" not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_command_arguments_stay_out_of_messages() -> None:
    # An argument can carry the secret itself (["echo", "hunter2"]); only the program is named.
    with pytest.raises(UserError) as info:
        from_command("sh", "-c", ": hunter2; exit 1")
    assert "hunter2" not in str(info.value)


def test_command_not_found() -> None:
    with pytest.raises(UserError, match=r"keepwarm-no-such-program: command not found"):
        from_command("/nonexistent/keepwarm-no-such-program")


def test_command_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT", 0.2)
    with pytest.raises(UserError) as info:
        from_command("sh", "-c", "printf hunter2; sleep 5")
    message = str(info.value)
    assert message.startswith("accounts[0].password_command: sh did not finish within 0.2 s")
    assert "hunter2" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__  # the timeout, holding the output, is hidden


def test_exactly_one_source_is_required(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^accounts\[0\]: set exactly one of password_file"):
        read_secret(file=None, env=None, command=None, key=KEY)
    with pytest.raises(UserError, match=r"^smtp: set exactly one of password_file"):
        read_secret(file=str(tmp_path / "p"), env="X", command=None, key="smtp.password")


def test_a_group_readable_password_file_warns(tmp_path: Path) -> None:
    path = private_file(tmp_path, b"s3cret\n")
    with capture_logs() as quiet:
        from_file(path)
    assert quiet == []
    path.chmod(0o640)
    with capture_logs() as logs:
        assert from_file(path) == "s3cret"
    [entry] = logs
    assert entry["log_level"] == "warning"
    assert entry["key"] == "accounts[0].password_file"
    assert entry["fix"] == f"chmod 600 {path}"
    assert "s3cret" not in repr(entry)


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert "hunter2" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("hunter3")
    assert secret != "hunter2"
