"""Where and how the noisy classifier runs: device and precision resolution, and the inference wrapper."""

from __future__ import annotations

import torch

from benchmark.errors import BenchmarkError


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchmarkError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda asked for but no CUDA device is visible: use --device cpu")
    return device


def resolve_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast for "bf16", and for "auto" where the device runs it natively."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX). oneDNN also reports bf16 as supported on
    plain AVX-512, where it is emulated: measured on such a Xeon, ResNet-20 ran at 389 images/s in bf16 against 923
    in fp32, so "auto" must not follow oneDNN's flag there."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(probe is None for probe in probes):  # an older torch: fall back to oneDNN's own answer
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return any(bool(probe()) for probe in probes if probe is not None)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a precision name ("auto": bf16 where the device runs it natively); None: fp32."""
    if precision == "fp16":
        return torch.float16
    if precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    return torch.bfloat16 if resolve_bf16(precision, device) else None


class SmoothingClassifier(torch.nn.Module):
    """Wraps a noisy classifier for certification: eval mode, no grad, channels_last, optional autocast (``bf16``:
    True for bfloat16, or a dtype), fp32 logits. The wrapped model is put in eval mode and channels_last in place."""

    def __init__(self, model: torch.nn.Module, device: torch.device, bf16: bool | torch.dtype | None):
        super().__init__()
        # channels_last is about 1.4x faster for convolutions under bf16 on CPU (ResNet-20: 2,350 vs 1,630 img/s).
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.device = device
        self.dtype = torch.bfloat16 if bf16 is True else (bf16 or None)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):  # fmt: skip
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()
