"""Canonical serialisation and hashing of configurations: the hash names result folders, so records of different
configurations never mix."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` (dataclasses, dicts, lists, scalars) canonically: sorted keys, no whitespace."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(obj: Any) -> str:
    """First 10 hex digits of the SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:10]


# Keys that joined the record key after results existed, with the value every older record implicitly had. A key
# holding that value is left out of the hash, so the records made before the key existed keep their folders: the
# only branches kept for old hashes, gathered here (tests/test_config.py lists them).
LATE_KEYS: dict[str, Any] = {
    "train_split": "train",  # a recipe search's fits train on "tune_train"; every earlier fit trained on "train"
    "certify": "fixed",  # sequential CERTIFY came after fixed-n CERTIFY
    "engine": "eager",  # the engines that fold, freeze or compile came after every record so far
}


def record_key(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` without the late keys that hold their original value (see :data:`LATE_KEYS`)."""
    return {k: v for k, v in key.items() if k not in LATE_KEYS or v != LATE_KEYS[k]}
