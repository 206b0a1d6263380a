"""Who is who: which addresses are one person, and what the user has said about each person.

Sources, weakest first: vCard people, config `[contacts]` rules, then the contact events of the
CLI replayed in log order (events override config). A pattern is an address or "@domain"
(subdomains included), matched by `detect.addresses.matches`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from keepwarm.config.schema import ContactsConfig, ModelConfig
from keepwarm.detect.addresses import matches, normalise
from keepwarm.model import ContactEvent
from keepwarm.relationship.vcard import read_vcards

__all__ = ["ContactFacts", "Directory", "read_vcards"]

T = TypeVar("T")
_Rule = tuple[str, str]  # (ignore | pin | tier | tag, the tier or tag name)


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """Everything the directory says about one contact."""

    tier: str
    tags: tuple[str, ...] = ()
    pinned: bool = False
    ignored: bool = False
    snoozed_until: datetime | None = None
    name: str | None = None  # from a vCard or a `name` event; beats names seen in mail


def canonical(address: str) -> str:
    """An address as the log stores it (a pattern's domain part is only lower-cased)."""
    return normalise(address) or address.strip().lower()


class _Patterns(Generic[T]):
    """Items filed under address-or-@domain patterns, found again for an address in O(labels)."""

    def __init__(self) -> None:
        self._exact: dict[str, list[tuple[int, str, T]]] = {}
        self._domain: dict[str, list[tuple[int, str, T]]] = {}

    def add(self, pattern: str, seq: int, item: T) -> None:
        text = pattern.strip()
        if "@" not in text or text.startswith("@"):
            domain = text.lstrip("@").rstrip(".").lower()
            if domain:
                self._domain.setdefault(domain, []).append((seq, text, item))
        else:
            self._exact.setdefault(canonical(text), []).append((seq, text, item))

    def find(self, addresses: Iterable[str]) -> list[tuple[int, str, T]]:
        """Items whose pattern matches any of `addresses`, in `seq` order, each once."""
        found: dict[int, tuple[int, str, T]] = {}
        for address in addresses:
            candidates = list(self._exact.get(address, ()))
            labels = address.rpartition("@")[2].split(".")
            for i in range(len(labels)):
                candidates.extend(self._domain.get(".".join(labels[i:]), ()))
            for entry in candidates:
                # The index only narrows the search; `matches` has the last word on a match.
                if entry[0] not in found and matches(address, entry[1]):
                    found[entry[0]] = entry
        return [found[seq] for seq in sorted(found)]


class Directory:
    """Address -> contact key, and the replayed facts (tier, tags, pins, ...) of each contact."""

    def __init__(
        self,
        key_of: dict[str, str],
        members: dict[str, tuple[str, ...]],
        vcard_names: dict[str, str],
        config_rules: _Patterns[_Rule],
        events: _Patterns[ContactEvent],
        model: ModelConfig,
    ) -> None:
        self._key_of = key_of
        self._members = members
        self._vcard_names = vcard_names
        self._config = config_rules
        self._events = events
        self._model = model
        self._facts: dict[str, ContactFacts] = {}

    @classmethod
    def build(
        cls,
        contacts: ContactsConfig,
        model: ModelConfig,
        events: Sequence[ContactEvent],
        vcard_people: Sequence[tuple[str | None, tuple[str, ...]]] = (),
    ) -> Directory:
        """Merge addresses (vCards, config aliases, `merge` events) and index every rule.

        The primary address of a merged person is, by strength of claim: the subject (target)
        of the latest `merge` event, else the first address of the first config alias, else
        the first address of the first vCard.
        """
        groups = _Groups()
        vcard_names: list[tuple[str, str]] = []
        for i, (name, raw) in enumerate(vcard_people):
            addresses = [canonical(a) for a in raw if "@" in a]
            if addresses:
                groups.claim(addresses, (0, -i))
                if name:
                    vcard_names.append((addresses[0], name))
        for i, alias in enumerate(contacts.aliases):
            groups.claim([canonical(a) for a in alias if "@" in a], (1, -i))
        for i, event in enumerate(events):
            value = event.value or ""
            if event.action == "merge" and _is_address(event.subject) and _is_address(value):
                groups.claim([canonical(event.subject), canonical(value)], (2, i))
        key_of, members = groups.resolve()
        names: dict[str, str] = {}
        for address, name in vcard_names:
            names.setdefault(key_of.get(address, address), name)

        config_rules: _Patterns[_Rule] = _Patterns()
        seq = 0
        for kind, rules in (("ignore", contacts.ignore), ("pin", contacts.pin)):
            for pattern in rules:
                config_rules.add(pattern, seq := seq + 1, (kind, ""))
        for tier, patterns in contacts.tiers.items():
            for pattern in patterns:
                config_rules.add(pattern, seq := seq + 1, ("tier", tier))
        for tag, patterns in contacts.tags.items():
            for pattern in patterns:
                config_rules.add(pattern, seq := seq + 1, ("tag", tag))
        replay: _Patterns[ContactEvent] = _Patterns()
        for i, event in enumerate(events):
            if event.action != "merge":
                replay.add(event.subject, i, event)
        return cls(key_of, members, names, config_rules, replay, model)

    def key(self, address: str) -> str:
        """The contact an address belongs to: its primary address."""
        normal = canonical(address)
        return self._key_of.get(normal, normal)

    def addresses(self, key: str) -> tuple[str, ...]:
        """Every address of the contact, primary first."""
        key = self.key(key)
        return self._members.get(key, (key,))

    def keys(self) -> tuple[str, ...]:
        """The keys of every contact that has more than one address."""
        return tuple(self._members)

    def addresses_of_interest(self, addresses: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """For changed counterparts: each affected contact key and all the addresses to fetch."""
        return {key: self.addresses(key) for key in dict.fromkeys(map(self.key, addresses))}

    def facts(self, key: str) -> ContactFacts:
        """Tier, tags, pin, ignore, snooze and name of a contact: config, then events replayed."""
        key = self.key(key)
        found = self._facts.get(key)
        if found is None:
            found = self._facts[key] = self._resolve(key)
        return found

    def name(self, key: str) -> str | None:
        return self.facts(key).name

    def tier(self, key: str) -> str:
        return self.facts(key).tier

    def tags(self, key: str) -> tuple[str, ...]:
        return self.facts(key).tags

    def pinned(self, key: str) -> bool:
        return self.facts(key).pinned

    def ignored(self, key: str) -> bool:
        return self.facts(key).ignored

    def snoozed_until(self, key: str) -> datetime | None:
        return self.facts(key).snoozed_until

    def _resolve(self, key: str) -> ContactFacts:
        addresses = self.addresses(key)
        config_tier, tags, pinned, ignored = self._configured(addresses)
        tier = config_tier
        tag_set = dict.fromkeys(tags)
        snoozed: datetime | None = None
        name = self._vcard_names.get(key)
        for _, _, item in self._events.find(addresses):
            action, value = item.action, item.value
            if action == "tier":
                tier = value if value else config_tier
            elif action == "tag" and value:
                tag_set[value] = None
            elif action == "untag":
                tag_set = {t: None for t in tag_set if value and t != value}
            elif action in ("pin", "unpin"):
                pinned = action == "pin"
            elif action in ("ignore", "unignore"):
                ignored = action == "ignore"
            elif action == "snooze":
                snoozed = _until(value) or snoozed
            elif action == "unsnooze":
                snoozed = None
            elif action == "name":
                name = value.strip() if value and value.strip() else self._vcard_names.get(key)
        if tier not in self._model.tiers:
            tier = self._model.default_tier
        return ContactFacts(tier, tuple(sorted(tag_set)), pinned, ignored, snoozed, name)

    def _configured(self, addresses: tuple[str, ...]) -> tuple[str, tuple[str, ...], bool, bool]:
        """Config rules: any ignore/pin/tag match applies; the most specific tier rule wins."""
        tier, best = self._model.default_tier, (-1, 0)
        tags: list[str] = []
        pinned = ignored = False
        for seq, pattern, item in self._config.find(addresses):
            kind, value = item
            if kind == "ignore":
                ignored = True
            elif kind == "pin":
                pinned = True
            elif kind == "tag":
                tags.append(value)
            elif kind == "tier" and (rank := (_specificity(pattern), -seq)) > best:
                tier, best = value, rank
        return tier, tuple(tags), pinned, ignored


class _Groups:
    """Union-find over addresses; each group keeps its strongest claim to a primary address."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._claim: dict[str, tuple[tuple[int, int], str]] = {}

    def _find(self, address: str) -> str:
        parent = self._parent.setdefault(address, address)
        if parent != address:
            parent = self._parent[address] = self._find(parent)
        return parent

    def claim(self, addresses: list[str], strength: tuple[int, int]) -> None:
        """`addresses` are one person, and `strength` backs addresses[0] as the primary."""
        if not addresses:
            return
        roots = list(dict.fromkeys(self._find(a) for a in addresses))
        best = (strength, addresses[0])
        for root in roots:
            if root in self._claim:
                best = max(best, self._claim.pop(root))
        for root in roots[1:]:
            self._parent[root] = roots[0]
        self._claim[roots[0]] = best

    def resolve(self) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        """address -> primary, and primary -> (primary, the others sorted) for merged groups."""
        by_root: dict[str, list[str]] = {}
        for address in self._parent:
            by_root.setdefault(self._find(address), []).append(address)
        key_of: dict[str, str] = {}
        members: dict[str, tuple[str, ...]] = {}
        for root, group in by_root.items():
            primary = self._claim[root][1]
            key_of.update(dict.fromkeys(group, primary))
            if len(group) > 1:
                members[primary] = (primary, *sorted(a for a in group if a != primary))
        return key_of, members


def _is_address(text: str) -> bool:
    return "@" in text and not text.strip().startswith("@")


def _specificity(pattern: str) -> int:
    """An address beats any domain; a longer domain beats its parent."""
    text = pattern.strip()
    if _is_address(text):
        return 1000
    return text.lstrip("@").count(".") + 1


def _until(value: str | None) -> datetime | None:
    """A snooze's end: an ISO date (midnight UTC) or datetime (naive = UTC); None if unreadable."""
    if not value:
        return None
    try:
        until = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
