"""Fictional names for the demo cast, and the address forms different kinds of mailbox use."""

from __future__ import annotations

import random
import unicodedata

FIRST = (
    "Aisha", "Amara", "Anders", "Ana", "Arjun", "Beatriz", "Björn", "Caoimhe", "Chen", "Chloé",
    "Dara", "Dmitri", "Efua", "Elif", "Emeka", "Esther", "Farah", "Felix", "Freya", "Gabriel",
    "Grace", "Hamza", "Hana", "Ines", "Ingrid", "Isaac", "Jamal", "Jana", "Joel", "José",
    "Kai", "Kavya", "Kenji", "Laila", "Leon", "Lina", "Luca", "Łukasz", "Mabel", "Malik",
    "Mei", "Mina", "Nadia", "Naveen", "Niamh", "Nico", "Noor", "Olu", "Omar", "Paloma",
    "Pavel", "Quinn", "Rafael", "Rania", "Reza", "Rosa", "Rui", "Sade", "Samir", "Saoirse",
    "Selin", "Siobhán", "Soren", "Tariq", "Thea", "Theo", "Uma", "Valeria", "Viktor", "Wanjiru",
    "Xavier", "Yara", "Yusuf", "Zanele", "Zoë", "Ibrahim", "Greta", "Mateo", "Imogen", "Kofi",
)  # fmt: skip

LAST = (
    "Abara", "Adeyemi", "Alvarez", "Andersen", "Bauer", "Bianchi", "Brennan", "Castillo",
    "Chowdhury", "Costa", "Dahl", "Demir", "Dubois", "Eriksen", "Ferreira", "Fischer", "Gallagher",
    "Garcia", "Gupta", "Halvorsen", "Hayes", "Horvat", "Iyer", "Jansen", "Kaur", "Kim", "Kovacs",
    "Lindqvist", "Lopes", "Mahmoud", "Marsh", "Mensah", "Moreau", "Murphy", "Nakamura", "Novak",
    "Obi", "Okonkwo", "Olsen", "Osei", "Park", "Pereira", "Petrov", "Quinlan", "Rahman", "Reyes",
    "Rossi", "Saito", "Santos", "Schmidt", "Shah", "Silva", "Sokolov", "Suzuki", "Tan", "Thorne",
    "Torres", "Varga", "Vasquez", "Walsh", "Wang", "Weber", "Whitaker", "Yilmaz", "Young", "Zhou",
)  # fmt: skip

# Letters NFKD does not decompose into an ASCII base letter.
_TRANSLIT = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae"})


def slug(text: str) -> str:
    """ASCII lower-case letters of a name, as people pick them for mailbox local parts."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return "".join(ch for ch in ascii_text.lower() if ch.isascii() and ch.isalpha())


class NamePool:
    """Draws full names without repeats, so no two contacts share a name or an address."""

    def __init__(self, rng: random.Random, reserved: set[str], addresses: set[str]) -> None:
        self._rng = rng
        self._used = set(reserved)
        self._addresses = set(addresses)

    def claim(self, address: str) -> str:
        """`address`, or a numbered variant when someone already has it (as mail servers do)."""
        local, domain = address.split("@")
        candidate, n = address, 1
        while candidate in self._addresses:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self._addresses.add(candidate)
        return candidate

    def draw(self) -> tuple[str, str]:
        while True:
            first, last = self._rng.choice(FIRST), self._rng.choice(LAST)
            if f"{first} {last}" not in self._used:
                self._used.add(f"{first} {last}")
                return first, last


def work_address(first: str, last: str, domain: str, style: int) -> str:
    """Company mailboxes follow the company's scheme: first.last, first, or f.last."""
    forms = (f"{slug(first)}.{slug(last)}", slug(first), f"{slug(first)[0]}{slug(last)}")
    return f"{forms[style % len(forms)]}@{domain}"


def personal_address(rng: random.Random, first: str, last: str, domains: tuple[str, ...]) -> str:
    """Private mailboxes: whatever was free when they signed up."""
    f, la = slug(first), slug(last)
    local = rng.choice((f"{f}.{la}", f"{f}{la}", f"{f[0]}{la}", f"{f}.{la}{rng.randint(70, 99)}"))
    return f"{local}@{rng.choice(domains)}"
