"""Configuration: suite files, the frozen :class:`~benchmark.config.run_config.RunConfig`, canonical hashing, typed
overrides, and the lazy registries of methods, bases and datasets.

Imports only :mod:`benchmark.errors` and :mod:`benchmark.files`; everything else reads its settings from here.
"""
