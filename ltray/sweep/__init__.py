"""The sweep runner: a sweep file expanded into Ray Tune trials, a consensus actor, and follow-ups.

`spec`, `load`, `plan`, `aggregator`, `tables`, `experiment` and `summary` are Ray-free; `actor`,
`searcher`, `callback`, `trainable` and `run` are the thin Ray layer around them.
"""
