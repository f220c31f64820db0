"""What a follow-up row is, as a ticket kind: the one classification that the closing summary and
analysis/ share (a transfer ticket is the target's own bespoke ticket when its source is the
target, another source's otherwise)."""

from __future__ import annotations

from ltray.experiment.labels import FOLLOWUP_KINDS, TrialKind

__all__ = ["FOLLOWUP_KINDS", "TICKET_KINDS", "ticket_kind"]

# ticket kinds: the summary's and the report's columns
PRET, LOO, BESPOKE_OWN, BESPOKE_OTHER, RANDOM = "pret_a_porter", "loo", "bespoke_own", "bespoke_other", "random"
TICKET_KINDS = (PRET, LOO, BESPOKE_OWN, BESPOKE_OTHER, RANDOM)  # summary column order


def ticket_kind(kind: str, source: str, task: str, leave_one_out: bool) -> str:
    """One of TICKET_KINDS for a follow-up row (a kind in FOLLOWUP_KINDS)."""
    kind = TrialKind(kind)
    if kind is TrialKind.PRET_A_PORTER:
        return LOO if leave_one_out else PRET
    if kind is TrialKind.TRANSFER:
        return BESPOKE_OWN if source == task else BESPOKE_OTHER
    return RANDOM
