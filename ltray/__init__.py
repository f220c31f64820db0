"""ltray: bespoke and pret-a-porter lottery tickets, swept at cluster scale on Ray.

The core (data, models, pruning, masks, consensus, training) and the experiment-folder format
(`ltray.experiment`) never import Ray; only `ltray.sweep` and `ltray.cluster` do.
"""

__version__ = "0.3.0"
