"""The emulator itself: its answers follow the discovery documents' schemas, and it charges
quota, pages, batches and fails the way the connector tests rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
from googleapiclient.errors import HttpError
from tests.connector_contract import mail
from tests.emulators.google import GoogleEmulator, apply_mask
from tests.emulators.google_calendar import timed
from tests.emulators.google_schema import document, problems, response_schema
from tests.emulators.google_setup import OWNER, account
from tests.emulators.google_setup import emulator as emulator  # the fixture

from keepwarm.connectors.google import service
from keepwarm.connectors.google.quota import Pacer


def test_gmail_answers_follow_the_discovery_schemas(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    box = emulator.user(OWNER).mailbox
    for i in range(3):
        box.deliver(mail(f"m{i}@x"))
    api = service.gmail(account(emulator, tmp_path), tmp_path, None, Pacer.for_rate(1e6))
    users = api.resource.users()
    first = box.ordered()[0].id
    answers = {
        "gmail.users.getProfile": users.getProfile(userId="me"),
        "gmail.users.messages.list": users.messages().list(userId="me", maxResults=2),
        "gmail.users.messages.get": users.messages().get(userId="me", id=first, format="metadata"),
        "gmail.users.history.list": users.history().list(userId="me", startHistoryId="4000000"),
    }
    doc = document("gmail")
    for method, request in answers.items():
        answer = request.execute()
        assert answer, method
        assert problems(doc, response_schema(doc, method), answer) == [], method
    api.close()


def test_calendar_answers_follow_the_discovery_schemas(
    emulator: GoogleEmulator, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    cal = emulator.user(OWNER).calendar
    start = datetime(2024, 3, 18, 9, tzinfo=UTC)
    cal.put({"iCalUID": "s@x", "start": timed(start, "Europe/Berlin"),
             "end": timed(start, "Europe/Berlin"), "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
             "organizer": {"email": OWNER}, "attendees": [{"email": OWNER}]})  # fmt: skip
    api = service.calendar(account(emulator, tmp_path, "google_calendar"), tmp_path, None,
                           Pacer.for_rate(1e6))  # fmt: skip
    events = api.resource.events()
    doc = document("calendar")
    for method, request in {
        "calendar.events.list": events.list(calendarId="primary", singleEvents=True),
        "calendar.calendarList.list": api.resource.calendarList().list(),
    }.items():
        answer = request.execute()
        assert problems(doc, response_schema(doc, method), answer) == [], method
    series = events.list(calendarId="primary").execute()
    assert problems(doc, "Events", series) == []
    assert series["items"][0]["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=3"]
    api.close()


def test_the_schema_check_can_fail() -> None:
    doc = document("gmail")
    assert problems(
        doc, "Message", {"id": "1", "internalDate": "soon", "labelIds": "INBOX", "body": "x"}
    ) == [
        ".internalDate: 'soon' is not int64",
        ".labelIds: not an array",
        ".body: not in the schema",
    ]


def test_partial_responses_keep_only_the_selected_fields() -> None:
    message = {"id": "1", "snippet": "body text", "payload": {"headers": [{"name": "A"}],
               "mimeType": "text/plain"}, "labelIds": ["INBOX"]}  # fmt: skip
    assert apply_mask(message, "id,labelIds,payload/headers") == {
        "id": "1", "payload": {"headers": [{"name": "A"}]}, "labelIds": ["INBOX"],
    }  # fmt: skip
    assert apply_mask({"items": [{"a": 1, "b": 2}], "n": 3}, "items(a),n") == {
        "items": [{"a": 1}], "n": 3,
    }  # fmt: skip


def test_metadata_scope_refuses_search_and_bodies(emulator: GoogleEmulator, tmp_path: Path) -> None:
    box = emulator.user(OWNER).mailbox
    message = box.deliver(mail("a@x"))
    api = service.gmail(account(emulator, tmp_path), tmp_path, None, Pacer.for_rate(1e6))
    messages = api.resource.users().messages()
    for request in (
        messages.list(userId="me", q="from:alice"),
        messages.get(userId="me", id=message.id, format="full"),
    ):
        with pytest.raises(HttpError) as caught:
            request.execute()
        assert caught.value.resp.status == 403
    assert emulator.units["gmail.users.messages.list"] == 5  # charged all the same
    api.close()
