"""`keepwarm demo` end to end: generated mail and calendar -> log -> model -> digest.

The expected outcomes come from the generator's scenario list (who was written to go cold, who
is owed a reply ...); what is checked is what the real pipeline computed from the files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.cli_runner import run_cli

from keepwarm.demo import generate

NOW = "2026-11-23T08:00:00+00:00"


@pytest.fixture(scope="module")
def scenarios() -> dict[str, str]:
    """address -> expected outcome, as the generator intends it (no model involved)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp), now=datetime.fromisoformat(NOW), seed=7)
    return {s.address: s.expect for s in data.scenarios}


@pytest.fixture
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, dict[str, Any]]:
    monkeypatch.setenv("KEEPWARM_NOW", NOW)
    root = tmp_path_factory.getbasetemp() / "demo-world"
    if not (root / "keepwarm.toml").exists():
        run = run_cli(capsys, "demo", "--dir", str(root), "--format", "json")
        assert run.code == 0, run.err
        (root / "digest.json").write_text(run.out)
    import json

    return root, json.loads((root / "digest.json").read_text())


def test_demo_digest_is_what_the_model_computes(
    demo: tuple[Path, dict[str, Any]], scenarios: dict[str, str]
) -> None:
    _, digest = demo
    sections = digest["sections"]
    going = {c["address"]: c["status"] for c in sections["going_cold"]}
    drifting = {a: e for a, e in scenarios.items() if e in ("cooling", "cold")}
    oldco = {a for a in drifting if a.endswith("@oldco.example")}
    # The friends drifting away are listed one by one with the status the rhythm gives them...
    assert going == {a: e for a, e in drifting.items() if a not in oldco}
    # ...while the former team that went quiet together is said once, as a circle.
    (circle,) = sections["circles"]
    assert circle["name"] == "oldco.example"
    assert circle["cold"] == len(oldco)
    assert [c["address"] for c in sections["owed_replies"]] == [
        a for a, e in scenarios.items() if e == "owed_reply"
    ]
    assert [c["address"] for c in sections["reconnected"]] == [
        a for a, e in scenarios.items() if e == "reconnected"
    ]
    assert [c["address"] for c in sections["upcoming"]] == [
        a for a, e in scenarios.items() if e == "suppressed"
    ]
    assert sections["sync_health"] == []
    assert all(c["reasons"] for c in sections["going_cold"])


def test_demo_contacts_have_the_intended_statuses(
    demo: tuple[Path, dict[str, Any]],
    scenarios: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = demo
    monkeypatch.setenv("KEEPWARM_NOW", NOW)
    contacts = run_cli(
        capsys, "--config", str(root / "keepwarm.toml"), "contacts", "--format", "json"
    ).json()
    by_address = {c["address"]: c for c in contacts}
    for address, expect in scenarios.items():
        contact = by_address.get(address)
        if expect == "absent":
            assert contact is None, address
            continue
        assert contact is not None, address
        if expect in ("warm", "cooling", "cold", "new"):
            assert contact["status"] == expect, (address, contact["reasons"])
        elif expect == "owed_reply":
            assert contact["owed_reply_since"] is not None, address
        elif expect == "suppressed":
            assert contact["next_meeting"] is not None, address
            assert contact["status"] in ("cooling", "cold"), address
    for contact in contacts:
        assert set(contact) >= {
            "address", "addresses", "name", "status", "last_touch", "touchpoints", "warmth",
        }  # fmt: skip
        assert datetime.fromisoformat(contact["last_touch"]).tzinfo == UTC


def test_demo_status_counts_the_broken_messages(
    demo: tuple[Path, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = demo
    monkeypatch.setenv("KEEPWARM_NOW", NOW)
    status = run_cli(
        capsys, "--config", str(root / "keepwarm.toml"), "status", "--format", "json"
    ).json()
    accounts = {a["name"]: a for a in status["accounts"]}
    assert set(accounts) == {"mail", "calendar"}
    mail = accounts["mail"]
    assert mail["error"] is None
    assert mail["touchpoints"] > 1000
    assert mail["skipped"] == 4
    assert mail["skipped_reasons"] == {"no-date": 1, "bad-header": 1, "bad-date": 1, "no-sender": 1}
    assert mail["filtered"]["mailing-list"] > 0
    assert accounts["calendar"]["touchpoints"] > 0


def test_rebuild_from_the_log_gives_the_same_contacts(
    demo: tuple[Path, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = demo
    monkeypatch.setenv("KEEPWARM_NOW", NOW)
    config = str(root / "keepwarm.toml")
    before = run_cli(capsys, "--config", config, "contacts", "--format", "json").json()
    rebuilt = run_cli(capsys, "--config", config, "rebuild")
    assert rebuilt.code == 0, rebuilt.err
    assert "rebuilt" in rebuilt.out
    after = run_cli(capsys, "--config", config, "contacts", "--format", "json").json()
    assert after == before
    # A second sync of unchanged sources finds nothing new and changes nothing.
    again = run_cli(capsys, "--config", config, "sync")
    assert again.code == 0, again.err
    assert "0 new touchpoints" in again.out
    assert run_cli(capsys, "--config", config, "contacts", "--format", "json").json() == before
