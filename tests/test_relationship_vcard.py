"""The vCard reader on small samples in the shapes address books export."""

from __future__ import annotations

from keepwarm.relationship.directory import read_vcards


def test_vcard_3_folded_lines_preferences_and_escapes() -> None:
    text = (
        "BEGIN:VCARD\r\n"
        "VERSION:3.0\r\n"
        "FN:Lovelace\\, Ada\r\n"
        "N:Lovelace;Ada;;;\r\n"
        "EMAIL;TYPE=INTERNET,HOME:ada@home.example\r\n"
        "EMAIL;TYPE=INTERNET,WORK,pref:ada.lovelace@a-very-long-domain-name-for-folding\r\n"
        " .example\r\n"
        "item1.EMAIL;type=INTERNET:ADA@HOME.EXAMPLE\r\n"
        "TEL:+44 20 0000\r\n"
        "END:VCARD\r\n"
    )
    assert read_vcards(text) == [
        (
            "Lovelace, Ada",
            ("ada.lovelace@a-very-long-domain-name-for-folding.example", "ada@home.example"),
        )
    ]


def test_vcard_4_pref_numbers_and_mailto() -> None:
    text = "\n".join(
        [
            "BEGIN:VCARD",
            "VERSION:4.0",
            "FN:Grace Hopper",
            "EMAIL;TYPE=work;PREF=2:grace@navy.example",
            "EMAIL;PREF=1:mailto:grace@home.example",
            "EMAIL:grace@third.example",
            "END:VCARD",
        ]
    )
    assert read_vcards(text) == [
        ("Grace Hopper", ("grace@home.example", "grace@navy.example", "grace@third.example"))
    ]


def test_vcard_2_1_quoted_printable_with_soft_breaks_and_bare_parameters() -> None:
    text = (
        "BEGIN:VCARD\r\n"
        "VERSION:2.1\r\n"
        "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=B6rg;;;\r\n"
        "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B6rg M=C3=BCller von und zu=\r\n"
        " Lange=20Name\r\n"
        "EMAIL;INTERNET:joerg@example.de\r\n"
        "EMAIL;INTERNET;PREF:jm@work.example\r\n"
        "END:VCARD\r\n"
    )
    # The QP soft break ("=" at the line end) joins the next line as it is, space included.
    assert read_vcards(text) == [
        ("Jörg Müller von und zu Lange Name", ("jm@work.example", "joerg@example.de"))
    ]


def test_several_cards_name_from_n_and_cards_without_email_skipped() -> None:
    text = """BEGIN:VCARD
VERSION:3.0
N:Turing;Alan;Mathison;Dr;
EMAIL:alan@example.org
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:No Mail
TEL:123
END:VCARD
begin:vcard
version:3.0
email:nameless@example.org
end:vcard
"""
    assert read_vcards(text) == [
        ("Dr Alan Mathison Turing", ("alan@example.org",)),
        (None, ("nameless@example.org",)),
    ]


def test_junk_does_not_raise() -> None:
    assert read_vcards("") == []
    assert read_vcards("hello\nEMAIL:stray@example.org\nEND:VCARD\n") == []
    assert read_vcards("BEGIN:VCARD\nEMAIL:no-at-sign\nFN\nEND:VCARD") == []
