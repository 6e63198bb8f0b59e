"""Evaluations beside certification: PGD and the empirical-robustness ``attack``, the certificate ``audit``, recipe
searches on the validation split (``tune``) and certification speed (``perf``).

Built on :mod:`benchmark.run` (session, fits, records); never imports :mod:`benchmark.report` or :mod:`benchmark.cli`.
"""
