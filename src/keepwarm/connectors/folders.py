"""Mail folder names: which are sent mail, which are trash, junk or drafts, and Dovecot's encoding.

Shared by the connectors that see folders (Maildir, mbox; later IMAP): names are matched on their
last component, case-folded, in the languages mail clients commonly use.
"""

from __future__ import annotations

import base64

SENT_NAMES = frozenset({
    "sent", "sent items", "sent messages", "sent mail", "sent-mail", "sent_mail", "sentmail",
    "gesendet", "gesendete objekte", "gesendete elemente", "gesendete nachrichten",
    "envoyés", "envoyes", "éléments envoyés", "messages envoyés", "enviados",
    "elementos enviados", "mensajes enviados", "itens enviados", "inviata", "posta inviata",
    "inviati", "verzonden", "verzonden items", "skickat", "skickade objekt", "sendt",
    "sendte elementer", "lähetetyt", "wysłane", "elementy wysłane", "odeslané", "отправленные",
})  # fmt: skip
SKIPPED_NAMES = frozenset({
    "trash", "deleted", "deleted items", "deleted messages", "bin", "papierkorb",
    "gelöschte elemente", "corbeille", "éléments supprimés", "papelera", "cestino",
    "prullenbak", "junk", "junk e-mail", "junk email", "spam", "bulk mail", "spamverdacht",
    "drafts", "entwürfe", "brouillons", "borradores", "bozze", "concepten", "outbox",
    "postausgang", "boîte d'envoi",
})  # fmt: skip


def folder_leaf(name: str) -> str:
    """The last component of a folder name, case-folded, for matching well-known names."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip().casefold()


def is_sent_folder(name: str, configured: str | None = None) -> bool:
    """True for the usual sent-folder names in several languages, or the configured one."""
    leaf = folder_leaf(name)
    if configured and configured.casefold() in (name.casefold(), leaf):
        return True
    return leaf in SENT_NAMES


def decode_mutf7(name: str) -> str:
    """Decode IMAP modified UTF-7 (RFC 3501), as Dovecot names Maildir++ folders: `Envoy&AOk-s`."""
    if "&" not in name:
        return name
    out: list[str] = []
    pos = 0
    while pos < len(name):
        amp = name.find("&", pos)
        dash = name.find("-", amp) if amp >= 0 else -1
        if amp < 0 or dash < 0:
            out.append(name[pos:])
            break
        out.append(name[pos:amp])
        encoded = name[amp + 1 : dash].replace(",", "/")
        try:
            decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            decoded = name[amp : dash + 1]  # not modified UTF-7 after all: keep it as written
        out.append(decoded if encoded else "&")
        pos = dash + 1
    return "".join(out)
