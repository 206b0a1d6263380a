"""Google's batch endpoint: a `multipart/mixed` body of `application/http` requests, answered
by a `multipart/mixed` body of `application/http` responses whose `Content-ID` is
`<response-ID>` for the request part's `<ID>`. Each inner call is a call of its own (counted,
quota-charged, rate-limited and failed on demand); Gmail refuses more than 100 per batch."""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from http import HTTPStatus
from typing import TYPE_CHECKING

from tests.emulators.google_errors import ApiError

if TYPE_CHECKING:
    from tests.emulators.google import GoogleEmulator

MAX_PARTS = 100


def answer(
    emulator: GoogleEmulator, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """The batch response for one batch request."""
    content_type = headers.get("content-type", "")
    if not content_type.startswith("multipart/mixed"):
        raise ApiError(400, "badContent", "Batch requests must be multipart/mixed.")
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = message.get_payload()
    if not isinstance(parts, list) or not parts:
        raise ApiError(400, "badContent", "Empty batch request.")
    if len(parts) > MAX_PARTS:
        raise ApiError(400, "badRequest", f"Too many requests in batch ({len(parts)} > 100).")
    emulator.batch_sizes.append(len(parts))
    boundary = f"batch_{uuid.uuid4().hex}"
    out: list[bytes] = []
    for part in parts:
        content_id = str(part["Content-ID"] or "").strip()
        payload = part.get_payload(decode=False)
        assert isinstance(payload, str)
        verb, target, inner_headers, inner_body = _request(payload)
        status, answer_headers, data = emulator.handle(verb, target, inner_headers, inner_body)
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name}: {value}" for name, value in answer_headers.items()]
        lines.append(f"Content-Length: {len(data)}")
        head = "\r\n".join(lines).encode() + b"\r\n\r\n"
        response_id = f"<response-{content_id.strip('<>')}>"
        out.append(
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            f"Content-ID: {response_id}\r\n\r\n".encode()
            + head
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, b"".join(out)


def _request(payload: str) -> tuple[str, str, dict[str, str], bytes]:
    """An `application/http` part -> (verb, path?query, lower-cased headers, body)."""
    request_line, _, rest = payload.lstrip("\r\n").partition("\n")
    verb, target, _version = request_line.strip().split(" ", 2)
    head, _, body = rest.replace("\r\n", "\n").partition("\n\n")
    parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(head + "\n\n")
    headers = {name.lower(): str(value) for name, value in parsed.items()}
    return verb, target, headers, body.encode()
