"""What a follow-up row is, as a ticket kind: the one classification that the closing summary and
analysis/ share (a transfer ticket is the target's own bespoke ticket when its source is the
target, another source's otherwise)."""

from __future__ import annotations

FOLLOWUP_KINDS = ("pret_a_porter", "transfer", "random")
PRET, LOO, BESPOKE_OWN, BESPOKE_OTHER, RANDOM = "pret_a_porter", "loo", "bespoke_own", "bespoke_other", "random"
TICKET_KINDS = (PRET, LOO, BESPOKE_OWN, BESPOKE_OTHER, RANDOM)  # summary column order


def ticket_kind(kind: str, source: str, dataset: str, leave_one_out: bool) -> str:
    """One of TICKET_KINDS for a follow-up row (kind in FOLLOWUP_KINDS)."""
    if kind == "pret_a_porter":
        return LOO if leave_one_out else PRET
    if kind == "transfer":
        return BESPOKE_OWN if source == dataset else BESPOKE_OTHER
    return RANDOM
