"""Reports as functions of the results folder: the results frame, metrics and their intervals, leaderboard tables
and CSVs, paired comparisons, plots, the attack and audit pages and the README block.

Reads results through :mod:`benchmark.run.records` (and the evaluations' readers); never fits or certifies.
"""
