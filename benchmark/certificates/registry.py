"""The certificates by name, and which one a cell uses (see :mod:`benchmark.certificates.certifier`)."""

from __future__ import annotations

from benchmark.certificates.cascade import CascadeCertifier
from benchmark.certificates.certifier import AdaptiveCertifier, Certifier, FixedCertifier, SequentialCertifier
from benchmark.errors import BenchmarkError

CERTIFIERS: dict[str, type[Certifier]] = {
    c.name: c for c in (FixedCertifier, SequentialCertifier, AdaptiveCertifier, CascadeCertifier)
}
# what ``run --certify`` may name: the certificates any single-sigma cell can use (a cascade is a method's own)
RUN_CERTIFICATES: tuple[str, ...] = tuple(name for name, c in CERTIFIERS.items() if c.run_level)


def certifier_class(name: str) -> type[Certifier]:
    """The certifier of a records' ``mode`` (a one-line error for a name no certifier has)."""
    known = CERTIFIERS
    if name not in known:
        raise BenchmarkError(f"no certificate is called {name!r}: known are {', '.join(sorted(known))}")
    return known[name]


def own_certificate(method_config) -> str | None:
    """The certificate a method's config names for itself (class attribute ``certificate``), or None: it takes the
    run's."""
    return getattr(type(method_config), "certificate", None)


def certifier_for(method_config, mode: str = "fixed", method: str = "", check: bool = True) -> Certifier:
    """The certifier of a cell: the one the method's config names (class attribute ``certificate``), else the run's
    ``mode``. A method with its own certificate refuses another run-level one (``check``; a plan only asks where
    the cell stands, so a dry run lists it and the run refuses it)."""
    own = own_certificate(method_config)
    if own is None:
        return certifier_class(mode)()
    if check and mode != "fixed":
        raise BenchmarkError(
            f"{method or own} certifies with its own certificate ({own}): run it without --certify {mode}"
        )
    return certifier_class(own).from_config(method_config)
