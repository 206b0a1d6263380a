"""Circles going quiet together: a whole former team falling silent usually means a job change,
which the digest says once, as a group, rather than as a dozen separate alerts. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from keepwarm.relationship.state import Assessment, Circle

QUIET = frozenset({"cooling", "cold", "dormant"})
DAY = 86400.0


def cooling_circles(
    assessments: Sequence[Assessment],
    *,
    now: datetime,
    min_members: int = 3,
    min_share: float = 0.5,
    tags: Mapping[str, tuple[str, ...]] | None = None,
    window_days: float = 60.0,
    max_age_days: float = 365.0,
) -> list[Circle]:
    """Organisations and tags whose two-way members went quiet together.

    Members are the two-way, not muted contacts of an organisation (`state.organisation`) or
    of a tag (`tags`: contact key -> tags; default each assessment's own tags). A circle is
    cooling when at least `min_share` of its members are cooling, cold or dormant, and at least
    `min_members` of those had their last touch within `window_days` of each other, the latest
    of them no more than `max_age_days` before `now` (an old, finished story is not news).
    `since` is the median last touch of the quiet members. Largest circles first.
    """
    groups: dict[tuple[str, str], list[Assessment]] = {}
    for a in assessments:
        if not a.state.two_way or a.status == "muted" or a.state.last_touch is None:
            continue
        if a.state.organisation:
            groups.setdefault(("organisation", a.state.organisation), []).append(a)
        for tag in tags.get(a.state.key, ()) if tags is not None else a.tags:
            groups.setdefault(("tag", tag), []).append(a)

    circles = []
    for (kind, name), members in groups.items():
        if len(members) < min_members:
            continue
        quiet = [a for a in members if a.status in QUIET]
        if not quiet or len(quiet) / len(members) < min_share:
            continue
        times = sorted(_touch(a) for a in quiet)
        together = _densest(times, window_days * DAY)
        if len(together) < min_members or now.timestamp() - together[-1] > max_age_days * DAY:
            continue
        circles.append(
            Circle(
                name=name,
                kind=kind,
                members=tuple(sorted(a.state.key for a in members)),
                cold=tuple(sorted(a.state.key for a in quiet)),
                share=len(quiet) / len(members),
                since=datetime.fromtimestamp(_median(times), UTC),
            )
        )
    circles.sort(key=lambda c: (-len(c.members), -len(c.cold), c.kind, c.name))
    return circles


def _touch(a: Assessment) -> float:
    assert a.state.last_touch is not None  # filtered before
    return a.state.last_touch.timestamp()


def _densest(times: list[float], window: float) -> list[float]:
    """The largest run of sorted `times` spanning at most `window` (the latest such run on ties)."""
    best_start = best_end = start = 0
    for end, t in enumerate(times, 1):
        while t - times[start] > window:
            start += 1
        if end - start >= best_end - best_start:
            best_start, best_end = start, end
    return times[best_start:best_end]


def _median(times: list[float]) -> float:
    """The median of sorted values (the mean of the middle two for an even count)."""
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
