"""Published weight files: found locally or through torch.hub's cache, always checked by full SHA-256."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.config.suite import PROJECT_ROOT
from benchmark.errors import BenchmarkError
from benchmark.files import sha256_file


def find_weights(filename: str, sha256: str, url: str | None, weights_dir: str | None) -> Path:
    """Locate a published weight file, fetch it through torch.hub if needed, and verify its full SHA-256.

    Looks in ``weights_dir``, then in torch.hub's checkpoint cache; downloads to that cache only when the
    file is in neither and a URL is published.
    """
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    local = Path(weights_dir).expanduser() if weights_dir else None
    if local is not None and not local.is_absolute():  # suite files name paths relative to the project root
        local = PROJECT_ROOT / local
    candidates = ([local / filename] if local else []) + [hub_dir / filename]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if url is None:
            raise BenchmarkError(
                f"weights {filename} not found in {' or '.join(str(c.parent) for c in candidates)}: "
                f"set weights_dir to the folder holding it (e.g. ../shared/models)"
            )
        try:
            torch.hub.download_url_to_file(url, str(hub_dir / filename), hash_prefix=sha256[:8], progress=True)
        except Exception as err:  # noqa: BLE001 - any network failure becomes one actionable line
            raise BenchmarkError(
                f"could not download {filename} ({type(err).__name__}); place a copy in {hub_dir} or set "
                f"weights_dir to a folder holding it"
            ) from None
        path = hub_dir / filename
    actual = sha256_file(path)
    if actual != sha256:
        raise BenchmarkError(
            f"checkpoint {path} has SHA-256 {actual[:12]}..., expected {sha256[:12]}...: the file is corrupt or "
            f"not the published one; delete it and fetch it again"
        )
    return path


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from safetensors or a torch file (``weights_only=True``), one error line if corrupt."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise BenchmarkError(
            f"cannot read checkpoint {path} ({type(err).__name__}): delete it and fetch it again"
        ) from None
    return blob.get("state_dict", blob) if isinstance(blob, dict) else blob
