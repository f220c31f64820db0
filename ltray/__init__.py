"""ltray: bespoke and pret-a-porter lottery tickets, swept at cluster scale on Ray.

The core (data, models, pruning, masks, consensus, training) never imports Ray; only
`ltray.sweep`, `ltray.cluster` and `ltray.status` do.
"""

__version__ = "0.1.0"
