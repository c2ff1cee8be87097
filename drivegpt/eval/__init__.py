"""Evaluation: closed-loop drives of any policy and the side-by-side benchmark.

Owns: ``closed_loop`` (drive a policy over held-out seeds, with or without the safety driver, and
summarise with the metric registry), ``benchmark`` (policies side by side on a scenario suite:
table, CSV, plots, failure GIFs).
May import: every layer below it (core, sim, data, model, policies, takeover, corner).
"""
