"""Which organisation a contact belongs to, from the domains their touchpoints went through."""

from __future__ import annotations

from keepwarm.detect.addresses import organisation_of


def contact_organisation(
    addresses: tuple[str, ...], per_address: dict[str, int], extra_free_mail: tuple[str, ...]
) -> str | None:
    """The organisation most of the contact's touchpoints went through (ties: address order)."""
    if len(addresses) == 1:
        return organisation_of(addresses[0], extra_free_mail)
    scores: dict[str, int] = {}
    for address in dict.fromkeys((*addresses, *per_address)):
        org = organisation_of(address, extra_free_mail)
        if org is not None:
            scores[org] = scores.get(org, 0) + per_address.get(address, 0)
    return max(scores, key=scores.__getitem__, default=None)
