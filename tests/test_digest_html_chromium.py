"""The digest's HTML part as a browser engine draws it: headless Chromium (Debian `chromium`).

No OCR: the page is drawn twice, once as sent and once with the key texts made invisible
(`visibility: hidden` keeps the layout). The key texts are located by the engine itself (a probe
script reports their boxes), and the two screenshots must differ inside each box (the text is
drawn there, visibly) and nowhere else. The screenshot is kept under the test's tmp dir.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tests.test_digest_render import NASTY, full_digest

from keepwarm.digest.message import build_message, new_message_id, stop_line, to_bytes

WIDTH, HEIGHT = 700, 1400
DOCS_EXAMPLE = Path(__file__).parents[1] / "docs" / "digest-example.png"
INSTALL_HINT = "Chromium is needed for the HTML rendering test: install Debian's chromium"
KEYS = (
    "Going cold",
    "Ana Silva",
    "keepwarm snooze ana@oldco.example 30d",
    NASTY,  # a name written to break HTML, shown literally
    "Replies you owe",
)

PROBE = """<pre id="kw-probe" style="display:none"></pre><script>
(() => {
  const keys = %s, boxes = {};
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walk.nextNode());) {
    for (const key of keys) {
      const at = node.data.indexOf(key);
      if (at < 0 || key in boxes) continue;
      const range = document.createRange();
      range.setStart(node, at); range.setEnd(node, at + key.length);
      const b = range.getBoundingClientRect();
      boxes[key] = [b.left, b.top, b.right, b.bottom];
    }
  }
  document.getElementById("kw-probe").textContent = JSON.stringify(
    {boxes, scrollWidth: document.documentElement.scrollWidth});
})();
</script>"""

HIDE = """<script>
(() => {
  const keys = %s, found = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const done = new Set();
  for (let node; (node = walk.nextNode());) {
    for (const key of keys) {
      const at = node.data.indexOf(key);
      if (at >= 0 && !done.has(key)) { done.add(key); found.push([node, at, key.length]); }
    }
  }
  for (const [node, at, length] of found.reverse()) {
    const middle = node.splitText(at); middle.splitText(length);
    const span = document.createElement("span");
    span.style.visibility = "hidden";
    middle.replaceWith(span); span.appendChild(middle);
  }
})();
</script>"""


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rows: list[bytes]  # RGB(A) bytes per row
    bpp: int

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        return tuple(self.rows[y][x * self.bpp : x * self.bpp + 3])


def decode_png(data: bytes) -> Image:
    """A PNG as rows of pixels: 8-bit RGB or RGBA, not interlaced (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert colour in (2, 6), colour
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind in (3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    line[i] = (line[i] + ((a + b) >> 1)) & 255
                    continue
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return Image(width, height, rows, bpp)


def chromium(tmp: Path, page: Path, *, screenshot: Path | None = None) -> str:
    """Run headless Chromium on `page`: a screenshot, or (without one) the DOM after scripts."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    profile = tmp / f"profile-{page.stem}-{'png' if screenshot else 'dom'}"
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
    ]  # fmt: skip
    args.append(f"--screenshot={screenshot}" if screenshot else "--dump-dom")
    done = subprocess.run(
        [*args, page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def html_part() -> str:
    """The HTML alternative of the digest email, as a mail client takes it out of the message."""
    digest = full_digest()
    msg = build_message(
        digest,
        sender="keepwarm <me@example.org>",
        recipient="me@example.org",
        message_id=new_message_id(digest.period, "me@example.org"),
        date=datetime(2026, 11, 23, 8, tzinfo=UTC),
        tz=ZoneInfo("Europe/London"),
        stop=stop_line(None),
    )
    parsed = message_from_bytes(to_bytes(msg), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def with_script(html: str, script: str) -> str:
    # "</" in a script would end it early: NASTY carries a "</script>" of its own.
    keys = json.dumps(KEYS).replace("</", "<\\/")
    return html.replace("</body>", script % keys + "</body>")


def test_the_html_part_draws_its_key_content_visibly_in_chromium(tmp_path: Path) -> None:
    html = html_part()
    as_sent, hidden = tmp_path / "digest.html", tmp_path / "hidden.html"
    as_sent.write_text(with_script(html, PROBE), encoding="utf-8")
    hidden.write_text(with_script(html, HIDE), encoding="utf-8")
    shot, blank = tmp_path / "digest.png", tmp_path / "hidden.png"  # kept as test artefacts
    chromium(tmp_path, as_sent, screenshot=shot)
    chromium(tmp_path, hidden, screenshot=blank)
    dom = chromium(tmp_path, as_sent)

    found = re.search(r'<pre id="kw-probe"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    probe = json.loads(html_lib.unescape(found.group(1)))
    assert probe["scrollWidth"] <= WIDTH  # nothing wider than a phone-ish window
    boxes = {key: tuple(round(v) for v in box) for key, box in probe["boxes"].items()}
    assert set(boxes) == set(KEYS), "every key text is in the page as text"

    image, without = decode_png(shot.read_bytes()), decode_png(blank.read_bytes())
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert len({image.pixel(x, y) for y in range(0, HEIGHT, 7) for x in range(0, WIDTH, 7)}) > 20
    assert image.pixel(4, 4) == (0xF4, 0xF1, 0xEC)  # the page background around the card
    for key, (left, top, right, bottom) in boxes.items():
        assert 0 <= left < right <= WIDTH, (key, boxes[key])  # on screen, not clipped
        assert 0 <= top < bottom <= HEIGHT, (key, boxes[key])
        inside = [
            (x, y)
            for y in range(top, bottom)
            for x in range(left, right)
            if image.pixel(x, y) != without.pixel(x, y)
        ]
        # Glyphs cover a fair share of a text's box: it is drawn, in a visible colour.
        assert len(inside) > 0.05 * (right - left) * (bottom - top), key

    def near_a_key(x: int, y: int) -> bool:
        return any(
            x0 - 3 <= x <= x1 + 3 and y0 - 3 <= y <= y1 + 3 for x0, y0, x1, y1 in boxes.values()
        )

    # Everything else is drawn identically. Two separate Chromium renders may still differ in a
    # stray anti-aliased pixel (seen once on a loaded machine), so a handful is tolerated; a
    # misplaced text changes hundreds.
    stray = [
        (x, y)
        for y in range(HEIGHT)
        if image.rows[y] != without.rows[y]
        for x in range(WIDTH)
        if image.pixel(x, y) != without.pixel(x, y) and not near_a_key(x, y)
    ]
    assert len(stray) <= 8, f"{len(stray)} pixels changed outside the key texts: {stray[:10]}"


def test_the_example_in_the_docs_is_a_real_screenshot() -> None:
    image = decode_png(DOCS_EXAMPLE.read_bytes())
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    colours = {image.pixel(x, y) for y in range(0, HEIGHT, 10) for x in range(0, WIDTH, 10)}
    assert len(colours) > 20
