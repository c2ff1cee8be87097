"""Evaluation: closed-loop drives of any policy and the side-by-side benchmark.

Owns: ``closed_loop`` (drive a policy over held-out seeds, with or without the safety driver, and
summarise with the metric registry), ``benchmark`` (policies side by side on a scenario suite:
table, CSV, plots, failure GIFs), ``naturalistic`` (collisions per 10⁶ km of a policy alone in
naturalistic traffic, and its running estimate).
May import: every layer below it (core, sim, data, model, policies, takeover, corner).
"""
