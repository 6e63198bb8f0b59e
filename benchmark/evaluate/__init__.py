"""Evaluations beside certification: PGD and the empirical-robustness ``attack``, the certificate ``audit``, recipe
searches on the validation split (``tune``), certification speed (``perf``) and what a denoiser shows
its base (``preview-denoised``).

Built on :mod:`benchmark.run` (session, fits, records); never imports :mod:`benchmark.report` or :mod:`benchmark.cli`.
"""
