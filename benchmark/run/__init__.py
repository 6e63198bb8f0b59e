"""Running a suite: the plan (one cell per base x method x sigma), the session (device, data, bases, methods and
their fits), the fit store, the runner loop, typed records and run.json, provenance and progress.

May import :mod:`benchmark.config`, :mod:`benchmark.data`, :mod:`benchmark.bases`, :mod:`benchmark.certificates` and
the method seam (:mod:`benchmark.method`, :mod:`benchmark.train`); never :mod:`benchmark.evaluate`,
:mod:`benchmark.report` or :mod:`benchmark.cli`.
"""
