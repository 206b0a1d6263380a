"""Loading the TOML config: values, every validation path, and where the file is found."""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path

import pytest

from keepwarm.config import AccountConfig, Config, TierConfig
from keepwarm.config import load as load_module
from keepwarm.config.load import find_path, load, parse, parse_schedule
from keepwarm.errors import ConfigError

KINDS = "maildir, mbox, imap, gmail, google_calendar, outlook, outlook_calendar, caldav, ics"
SECTIONS = "going_cold, owed_replies, reconnected, circles, upcoming, sync_health"
NEEDS_PW = "needs a password: set password_file, password_env or password_command"
DAEMON_KEYS = (
    "mail_interval, calendar_interval, jitter, log_level, workers, backoff_min, push, "
    "stop_timeout, status_interval, lease_seconds, worker_id, metrics_listen"
)

FULL = """
[owner]
addresses = ["me@example.org"]
name = "Me"

[store]
url = "sqlite:////var/lib/keepwarm/keepwarm.db"

[[accounts]]
name = "home"
kind = "maildir"
path = "~/Maildir"

[[accounts]]
name = "work"
kind = "imap"
host = "imap.example.org"
port = 993
security = "tls"
username = "me"
password_file = "/etc/keepwarm/imap-password"

[model]
half_life_days = 60

[digest]
to = "me@example.org"
schedule = "Mon 08:00"
timezone = "Europe/London"

[smtp]
host = "smtp.example.org"
port = 587
security = "starttls"
username = "me"
password_file = "/etc/keepwarm/smtp-password"
from = "keepwarm <me@example.org>"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_the_design_example_loads_into_the_documented_values() -> None:
    config = parse(FULL)
    assert config.owner.addresses == ("me@example.org",)
    assert [(a.name, a.kind) for a in config.accounts] == [("home", "maildir"), ("work", "imap")]
    assert config.accounts[0].path == os.path.expanduser("~/Maildir")
    assert config.accounts[1].port == 993
    assert config.model.half_life_days == 60.0
    assert isinstance(config.model.half_life_days, float)
    assert config.digest.timezone == "Europe/London"
    assert config.smtp.from_ == "keepwarm <me@example.org>"
    assert config.owner_addresses() == frozenset({"me@example.org"})


def test_empty_text_gives_the_defaults() -> None:
    assert parse("") == Config()


def test_a_number_below_its_bound_names_the_key_bound_and_value() -> None:
    assert problems_of("[model]\nhalf_life_days = -3") == [
        "model.half_life_days: must be > 0, got -3"
    ]


def test_a_wrong_type_names_the_account_index() -> None:
    text = FULL + '\n[[accounts]]\nname = "x"\nkind = "maildir"\npath = "/m"\nport = "x"\n'
    assert problems_of(text) == ['accounts[2].port: must be an integer, got "x"']


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[digest]\nmax_items = true", "digest.max_items: must be an integer, got true"),
        ("[digest]\nmax_items = 2.5", "digest.max_items: must be an integer, got 2.5"),
        ('[detect]\nkeep_subjects = "yes"',
         'detect.keep_subjects: must be true or false, got "yes"'),
        ("[model]\ncold_below = false", "model.cold_below: must be a number, got false"),
        ("[model]\nhalf_life_days = inf", "model.half_life_days: must be a finite number, got inf"),
        ('[owner]\naddresses = "me@x.org"',
         'owner.addresses: must be an array of strings, got "me@x.org"'),
        ("[owner]\naddresses = [1]", "owner.addresses[0]: must be a string, got 1"),
        ('[contacts]\naliases = ["a@x.org"]',
         'contacts.aliases[0]: must be an array of strings, got "a@x.org"'),
        ('[contacts]\naliases = [["a@x.org", 3]]',
         "contacts.aliases[0][1]: must be a string, got 3"),
        ("[contacts.tiers]\ninner = 3", "contacts.tiers.inner: must be an array of strings, got 3"),
        ("[model.tiers.inner]\nmax_days = 0", "model.tiers.inner.max_days: must be > 0, got 0"),
        ("[model]\ntiers = 3", "model.tiers: must be a table, got 3"),
        ("model = 3", "model: must be a table, got 3"),
        ('[[accounts]]\nname = "a"\nkind = "pop3"',
         f'accounts[0].kind: must be one of {KINDS}, got "pop3"'),
        ('[digest]\nsections = ["going_cold", "gossip"]',
         f'digest.sections[1]: must be one of {SECTIONS}, got "gossip"'),
        ("[smtp]\nport = 70000", "smtp.port: must be <= 65535, got 70000"),
        ("[daemon]\njitter = 1.5", "daemon.jitter: must be <= 1, got 1.5"),
        ("[store]\nurl = 1979-05-27", "store.url: must be a string, got a date/time (1979-05-27)"),
        ('[accounts]\nname = "a"', "accounts: must be an array of tables, got a table"),
    ],
)  # fmt: skip
def test_type_and_rule_errors(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


def test_an_integer_is_accepted_where_a_number_is_expected() -> None:
    weights = parse("[model.weights]\ncc = 1").model.weights
    assert weights.cc == 1.0
    assert isinstance(weights.cc, float)


def test_unknown_keys_suggest_the_nearest_known_key() -> None:
    assert problems_of("[daemon]\nmail_intervall = 60") == [
        "daemon.mail_intervall: unknown key (did you mean mail_interval?)"
    ]
    assert problems_of(account(kind="maildir", path="/m", pasword_file="/p")) == [
        "accounts[0].pasword_file: unknown key (did you mean password_file?)"
    ]


def test_unknown_keys_without_a_near_match_list_the_known_keys() -> None:
    assert problems_of("[daemon]\nfrequency = 3") == [
        f"daemon.frequency: unknown key (known keys: {DAEMON_KEYS})"
    ]
    [problem] = problems_of("[digests]\nto = 'me@example.org'")
    assert problem.startswith("digests: unknown key (did you mean digest?)")


def test_smtp_from_is_spelled_from_in_toml() -> None:
    assert parse('[smtp]\nfrom = "me@example.org"').smtp.from_ == "me@example.org"
    assert problems_of('[smtp]\nfrom_ = "me@example.org"') == [
        "smtp.from_: unknown key (did you mean from?)"
    ]


def test_path_is_not_a_config_key() -> None:
    assert problems_of('path = "/etc/x.toml"')[0].startswith("path: unknown key")


def test_every_problem_is_reported_at_once() -> None:
    text = """
[model]
half_life_days = -3
cold_below = 0.5
[daemon]
frequency = 3
[[accounts]]
name = "a"
kind = "pop3"
[[accounts]]
name = "a"
kind = "maildir"
port = "x"
[digest]
timezone = "Mars/Olympus"
"""
    with pytest.raises(ConfigError) as info:
        parse(text, Path("/etc/keepwarm/keepwarm.toml"))
    assert sorted(info.value.problems) == sorted([
        "model.half_life_days: must be > 0, got -3",
        "model.cold_below: must be < cooling_below (0.2), got 0.5",
        f"daemon.frequency: unknown key (known keys: {DAEMON_KEYS})",
        f'accounts[0].kind: must be one of {KINDS}, got "pop3"',
        'accounts[1].port: must be an integer, got "x"',
        'accounts[1].name: "a" is also accounts[0]',
        'accounts[1].path: required for kind "maildir"',
        'digest.timezone: must be an IANA zone like Europe/London, got "Mars/Olympus"',
    ])  # fmt: skip
    assert info.value.path == "/etc/keepwarm/keepwarm.toml"
    assert "in /etc/keepwarm/keepwarm.toml" in str(info.value)
    assert "model.half_life_days: must be > 0, got -3" in str(info.value)


def test_a_value_already_wrong_is_not_reported_twice() -> None:
    # kind = 3 leaves kind unset; "kind is required" on top of the type error would be noise.
    assert problems_of('[[accounts]]\nname = "a"\nkind = 3') == [
        "accounts[0].kind: must be a string, got 3"
    ]


def test_toml_syntax_errors_name_line_and_column() -> None:
    [problem] = problems_of("[owner]\naddresses = [\n\nname = ")
    assert problem.startswith("line 4, column ")
    assert "TOML syntax error" in problem


def test_user_tiers_merge_over_the_default_tiers() -> None:
    config = parse(
        "[model]\ndefault_tier = 'vip'\n"
        "[model.tiers.inner]\nmax_days = 30\n"
        "[model.tiers.vip]\ntypical_days = 5\n"
        "[contacts.tiers]\nvip = ['ceo@example.org']\n"
    )
    assert config.model.tiers == {
        "inner": TierConfig(max_days=30, typical_days=10.0),
        "close": TierConfig(max_days=120, typical_days=30.0),
        "network": TierConfig(max_days=365, typical_days=90.0),
        "vip": TierConfig(max_days=365, typical_days=5.0),
    }
    assert config.contacts.tiers == {"vip": ("ceo@example.org",)}


def test_tier_names_must_exist() -> None:
    assert problems_of("[model]\ndefault_tier = 'vip'\n[contacts.tiers]\nfamily = ['@x.org']") == [
        "model.default_tier: must be a tier in model.tiers (inner, close, network)",
        "contacts.tiers.family: no such tier in model.tiers (inner, close, network)",
    ]


def test_cold_threshold_must_be_below_cooling_threshold() -> None:
    assert problems_of("[model]\ncold_below = 0.2\ncooling_below = 0.2") == [
        "model.cold_below: must be < cooling_below (0.2), got 0.2"
    ]


def account(**keys: object) -> str:
    lines = ["[[accounts]]"]
    for key, value in {"name": "a", **keys}.items():
        if isinstance(value, tuple):
            rendered = "[" + ", ".join(f'"{item}"' for item in value) + "]"
        else:
            rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


IMAP = {"kind": "imap", "host": "imap.example.org", "username": "me", "password_env": "PW"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"kind": "maildir"}, ['accounts[0].path: required for kind "maildir"']),
        ({"kind": "mbox"}, ['accounts[0].path: required for kind "mbox"']),
        ({"kind": "imap"}, [
            'accounts[0].host: required for kind "imap"',
            'accounts[0].username: required for kind "imap"',
            f'accounts[0].password_file: kind "imap" {NEEDS_PW}',
        ]),
        ({"kind": "caldav", "url": "https://dav.example.org/"}, [
            'accounts[0].username: required for kind "caldav"',
            f'accounts[0].password_file: kind "caldav" {NEEDS_PW}',
        ]),
        ({"kind": "gmail"}, ['accounts[0].credentials_file: required for kind "gmail"']),
        ({"kind": "google_calendar"},
         ['accounts[0].credentials_file: required for kind "google_calendar"']),
        ({"kind": "outlook"}, ['accounts[0].client_id: required for kind "outlook"']),
        ({"kind": "outlook_calendar"},
         ['accounts[0].client_id: required for kind "outlook_calendar"']),
        ({"kind": "ics"}, ['accounts[0].url: kind "ics" needs exactly one of url or path']),
        ({"kind": "ics", "url": "https://x.org/a.ics", "path": "/a.ics"},
         ['accounts[0].url: kind "ics" needs exactly one of url or path']),
        ({"kind": "maildir", "path": "/m", "name": ""},
         ["accounts[0].name: required: a short unique name for logs and status"]),
        ({"path": "/m"}, [f"accounts[0].kind: required: one of {KINDS}"]),
        ({**IMAP, "password_file": "/p"},
         ["accounts[0].password_env: set only one of password_file, password_env"]),
        ({**IMAP, "password_env": None, "password_command": ()},
         ["accounts[0].password_command: must name a command, got an empty array"]),
        ({"kind": "outlook", "client_id": "c", "client_secret_env": "S",
          "client_secret_command": ("pass",)},
         ["accounts[0].client_secret_command: set only one of client_secret_env,"
          " client_secret_command"]),
        ({**IMAP, "security": "none"},
         ['accounts[0].security: "none" (unencrypted) is refused for non-loopback host'
          ' "imap.example.org"']),
        ({"kind": "ics", "url": "ftp://x.org/a.ics"},
         ['accounts[0].url: must be a URL with scheme http, https or file, got "ftp://x.org/..."']),
        ({"kind": "caldav", "url": "file:///dav", "username": "me", "password_env": "PW"},
         ['accounts[0].url: must be a URL with scheme http or https, got "file:///..."']),
        ({"kind": "caldav", "url": "https:///dav", "username": "me", "password_env": "PW"},
         ['accounts[0].url: must name a host, got "https:///..."']),
        ({"kind": "outlook", "client_id": "c", "authority": "http://login.example.org/"},
         ['accounts[0].authority: must be a URL with scheme https, got "http://login.example.org/..."']),
        ({"kind": "gmail", "credentials_file": "/c.json", "endpoint": "localhost:8080"},
         ["accounts[0].endpoint: must be a URL with scheme http or https, "
          "got a value that is not a URL"]),
        ({"kind": "maildir", "path": "/m", "addresses": ("me",)},
         ['accounts[0].addresses[0]: must be an email address (or @domain), got "me"']),
    ],
)  # fmt: skip
def test_account_rules(keys: dict[str, object], expected: list[str]) -> None:
    keys = {k: v for k, v in keys.items() if v is not None}
    assert problems_of(account(**keys)) == expected


@pytest.mark.parametrize(
    "keys",
    [
        {"kind": "maildir", "path": "/m"},
        {**IMAP, "security": "starttls", "port": 143},
        {**IMAP, "password_env": None, "password_command": ("pass", "show", "imap")},
        {"kind": "ics", "url": "file:///srv/team.ics"},
        {"kind": "ics", "path": "/srv/team.ics"},
        {"kind": "gmail", "credentials_file": "/c.json", "endpoint": "http://127.0.0.1:8080/"},
        {"kind": "outlook", "client_id": "c", "authority": "https://login.example.org/t",
         "graph_endpoint": "http://[::1]:9000/v1.0"},
        {"kind": "caldav", "url": "http://localhost:5232/", "username": "me", "password_env": "PW"},
    ],
)  # fmt: skip
def test_valid_accounts_pass(keys: dict[str, object]) -> None:
    keys = {k: v for k, v in keys.items() if v is not None}
    assert parse(account(**keys)).accounts[0].kind == keys["kind"]


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]
)
def test_plain_text_is_allowed_on_loopback(host: str) -> None:
    text = account(**IMAP, security="none").replace("imap.example.org", host)
    text += f'[smtp]\nhost = "{host}"\nsecurity = "none"\n'
    assert parse(text).smtp.security == "none"


@pytest.mark.parametrize("host", ["smtp.example.org", "128.0.0.1", "::2", "localhost.example.org"])
def test_plain_text_smtp_is_refused_off_loopback(host: str) -> None:
    assert problems_of(f'[smtp]\nhost = "{host}"\nsecurity = "none"') == [
        f'smtp.security: "none" (unencrypted) is refused for non-loopback host "{host}"'
    ]


def test_smtp_password_rules() -> None:
    assert problems_of('[smtp]\nhost = "smtp.example.org"\nusername = "me"') == [
        "smtp.password_file: smtp.username needs a password:"
        " set password_file, password_env or password_command"
    ]
    assert problems_of('[smtp]\npassword_env = "A"\npassword_file = "/p"') == [
        "smtp.password_env: set only one of password_file, password_env"
    ]


def test_digest_schedule_and_timezone_are_checked() -> None:
    assert problems_of('[digest]\nschedule = "Funday 08:00"\ntimezone = "Europe/Lundun"') == [
        'digest.schedule: expected "<Mon..Sun> HH:MM" like "Mon 08:00", got "Funday 08:00"',
        'digest.timezone: must be an IANA zone like Europe/London, got "Europe/Lundun"',
    ]
    config = parse('[digest]\nschedule = "Fri 17:30"\ntimezone = "America/New_York"')
    assert parse_schedule(config.digest.schedule) == (4, time(17, 30))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Mon 08:00", (0, time(8, 0))), ("sun 23:59", (6, time(23, 59))),
     ("Wednesday 7:05", (2, time(7, 5))), (" Sat  00:00 ", (5, time(0, 0)))],
)  # fmt: skip
def test_parse_schedule(text: str, expected: tuple[int, time]) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    "text", ["Mon", "Mon 24:00", "Mon 08:60", "Mon 8", "Mo 08:00", "08:00 Mon"]
)
def test_parse_schedule_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="Mon 08:00"):
        parse_schedule(text)


def test_noreply_patterns_must_compile() -> None:
    [problem] = problems_of('[detect]\nnoreply_patterns = ["^no-?reply", "(unclosed"]')
    assert problem.startswith("detect.noreply_patterns[1]: not a valid regular expression:")


def test_addresses_need_an_at_sign() -> None:
    text = """
[owner]
addresses = ["me@example.org", "me"]
[digest]
to = "me.example.org"
[contacts]
ignore = ["@newsletters.example.com", "bob"]
pin = ["@family.example"]
[contacts.tags]
climbing = ["alex@example.net", "sam"]
"""
    assert problems_of(text) == [
        'owner.addresses[1]: must be an email address (or @domain), got "me"',
        'contacts.ignore[1]: must be an email address (or @domain), got "bob"',
        'contacts.tags.climbing[1]: must be an email address (or @domain), got "sam"',
        'digest.to: must be an email address (or @domain), got "me.example.org"',
    ]


def test_paths_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse(
        account(kind="imap", host="h.example.org", username="me", password_file="~/pw",
                ca_file="~/ca.pem")
        + '[contacts]\nvcards = ["~/people.vcf"]\n[smtp]\npassword_file = "~/smtp-pw"\n'
    )  # fmt: skip
    assert config.accounts[0].password_file == f"{tmp_path}/pw"
    assert config.accounts[0].ca_file == f"{tmp_path}/ca.pem"
    assert config.contacts.vcards == (f"{tmp_path}/people.vcf",)
    assert config.smtp.password_file == f"{tmp_path}/smtp-pw"
    assert config.accounts[0].host == "h.example.org"  # not a path: left alone


def test_load_reads_the_file_and_remembers_its_path(tmp_path: Path) -> None:
    path = tmp_path / "keepwarm.toml"
    path.write_text(FULL, encoding="utf-8")
    config = load(path)
    assert config.path == path
    assert config.accounts[1] == AccountConfig(
        name="work", kind="imap", host="imap.example.org", port=993, security="tls",
        username="me", password_file="/etc/keepwarm/imap-password",
    )  # fmt: skip


def test_load_without_a_file_gives_the_defaults() -> None:
    assert load(None) == Config()


def test_load_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path)  # a directory
    assert info.value.path == str(tmp_path)
    assert info.value.problems[0].startswith("cannot read the file:")
    binary = tmp_path / "bad.toml"
    binary.write_bytes(b"name = '\xff'")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(binary)


@pytest.fixture
def places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Candidate config files in a temporary tree, with the environment pointing at it."""
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "env.toml",
        "xdg": tmp_path / "xdg" / "keepwarm" / "keepwarm.toml",
        "system": tmp_path / "etc" / "keepwarm.toml",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    monkeypatch.setenv("KEEPWARM_CONFIG", str(paths["env"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(load_module, "SYSTEM_PATH", paths["system"])
    return paths


def test_find_path_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_path(places["explicit"]) == places["explicit"]
    assert find_path(str(places["explicit"])) == places["explicit"]
    assert find_path(None) == places["env"]
    monkeypatch.delenv("KEEPWARM_CONFIG")
    assert find_path(None) == places["xdg"]
    places["xdg"].unlink()
    assert find_path(None) == places["system"]
    places["system"].unlink()
    assert find_path(None) is None


def test_an_empty_keepwarm_config_counts_as_unset(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPWARM_CONFIG", "")
    assert find_path(None) == places["xdg"]


def test_a_named_file_that_is_missing_is_an_error(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: no such file \(the path given\)"):
        find_path(tmp_path / "missing.toml")
    monkeypatch.setenv("KEEPWARM_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone\.toml: no such file \(\$KEEPWARM_CONFIG\)"):
        find_path(None)


def test_find_path_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k.toml").write_text("", encoding="utf-8")
    assert find_path("~/k.toml") == tmp_path / "k.toml"


def test_problem_messages_never_echo_secrets() -> None:
    text = """
[[accounts]]
name = "feed"
kind = "ics"
url = "ftp://user:hunter2@calendar.example/private-token-abc/basic.ics"

[smtp]
host = "smtp.example.org"
password_command = "echo hunter2"
"""
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "smtp.password_command" in message
    assert "accounts[0].url" in message
    assert "hunter2" not in message
    assert "private-token-abc" not in message


IMAP_OAUTH = """
[[accounts]]
name = "mail"
kind = "imap"
host = "imap.example.org"
username = "me@example.org"
auth = "xoauth2"
"""


def test_imap_with_google_sign_in_needs_one_way_to_credentials() -> None:
    assert problems_of(IMAP_OAUTH + 'oauth_provider = "google"\n') == [
        "accounts[0].credentials_file: oauth_provider google needs one of credentials_file, "
        "client_secrets_file, service_account_file"
    ]
    parse(IMAP_OAUTH + 'oauth_provider = "google"\nclient_secrets_file = "/etc/kw/client.json"\n')


def test_imap_with_microsoft_sign_in_needs_a_client_id_and_no_app_secret() -> None:
    assert problems_of(
        IMAP_OAUTH + 'oauth_provider = "microsoft"\nclient_secret_env = "SECRET"\n'
    ) == [
        "accounts[0].client_id: required with oauth_provider microsoft",
        "accounts[0].client_secret_file: IMAP signs in as you (keepwarm auth microsoft): "
        "no app-only client secret",
    ]
    parse(IMAP_OAUTH + 'oauth_provider = "microsoft"\nclient_id = "11111111-2222"\n')


def test_account_names_with_control_characters_are_refused() -> None:
    [problem] = problems_of('[[accounts]]\nname = "a\\u001fb"\nkind = "maildir"\npath = "/tmp/m"\n')
    assert problem.startswith("accounts[0].name: must not contain control characters")
