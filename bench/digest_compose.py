"""Digest benchmark: `digest.compose.compose` over 50,000 contacts vs ranking them with a sort.

Target (issue 2): composing the digest of 50,000 contacts in under 1 s. Usage:

    .venv/bin/python bench/digest_compose.py [--contacts 50000] [--touchpoints 750000] [--rounds 5]

Input: synthetic histories (heavy-tailed, three years, some contacts gone quiet) folded with
`relationship.fold` and assessed with `relationship.assess` at one `now`, as `keepwarm digest`
does from the state cache; circles from `relationship.circles.cooling_circles`.

Reference, same run, same objects: one plain `sorted()` of all the assessments by the going-cold
ranking key (score, then key). Ranking everyone is the one step a digest cannot skip, so the
ratio says how much compose costs on top of it. For scale, the figures around compose in a real
`keepwarm digest` are printed too: loading the 50,000 cached states (`Store.load_states` from
SQLite), turning them back into assessments, and finding circles.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime

from _common import bench_dir, best_of, histories, line, machine

from keepwarm.config.schema import Config
from keepwarm.digest.compose import compose, score
from keepwarm.relationship.assess import assess
from keepwarm.relationship.circles import cooling_circles
from keepwarm.relationship.fold import fold
from keepwarm.relationship.state import Assessment, ContactState
from keepwarm.store import Store

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
TIER = "network"


def states(touchpoints: int, contacts: int) -> list[ContactState]:
    model = Config().model
    return [
        fold(h[0].counterpart, (h[0].counterpart,), h, model, TIER)
        for h in histories(touchpoints, contacts, seed=11)
    ]


def assessments(found: list[ContactState]) -> list[Assessment]:
    model = Config().model
    return [assess(state, NOW, model, tier=TIER) for state in found]


def ranked(found: list[Assessment]) -> list[Assessment]:
    """The reference: everyone sorted by what they stand to lose (the going-cold order)."""
    return sorted(found, key=lambda a: (-score(a), a.state.key))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--touchpoints", type=int, default=750_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each step; best counts")
    args = parser.parse_args()
    print(f"folding {args.touchpoints:,} touchpoints into {args.contacts:,} states ...")
    folded = states(args.touchpoints, args.contacts)
    config = Config()
    found = assessments(folded)
    circles = cooling_circles(found, now=NOW)

    sort_times: list[float] = []
    compose_times: list[float] = []
    for _ in range(args.rounds):
        sort_times.append(best_of(lambda: ranked(found), 1)[0])
        seconds, digest = best_of(
            lambda: compose(found, now=NOW, config=config.digest, circles=circles), 1
        )
        compose_times.append(seconds)
    reference, composed = min(sort_times), min(compose_times)

    # The steps around compose in `keepwarm digest`, for scale (not part of the target).
    url = f"sqlite:///{bench_dir()}/digest-{args.contacts}.db"
    with Store.open(url) as store:
        store.save_states(((s.key, s.to_dict()) for s in folded), replace_all=True)
        load, loaded = best_of(store.load_states, args.rounds)
    revive, _ = best_of(
        lambda: assessments([ContactState.from_dict(row) for row in loaded]), args.rounds
    )
    circle_time, _ = best_of(lambda: cooling_circles(found, now=NOW), args.rounds)

    statuses = Counter(a.status for a in found)
    sizes = ", ".join(f"{s.key} {s.size + s.omitted}" for s in digest.sections)
    line("machine", machine())
    line("contacts", f"{len(found):,}  ({', '.join(f'{k} {n:,}' for k, n in statuses.items())})")
    line("digest", f"{sizes}; {len(circles)} circles")
    line("plain sort of the assessments", f"{reference * 1000:8.1f} ms (best of {args.rounds})")
    line("compose", f"{composed * 1000:8.1f} ms (best of {args.rounds}, target < 1000)")
    line(
        "all runs, sort / compose",
        " ".join(
            f"{s * 1000:.0f}/{c * 1000:.0f}" for s, c in zip(sort_times, compose_times, strict=True)
        ),
    )
    line("ratio compose / sort", f"{composed / reference:.2f}")
    line("for scale: Store.load_states", f"{load * 1000:8.1f} ms")
    line("for scale: from_dict + assess", f"{revive * 1000:8.1f} ms")
    line("for scale: cooling_circles", f"{circle_time * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
