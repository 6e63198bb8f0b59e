"""How a noisy classifier's forward pass runs during certification: the ``engine`` setting.

* ``eager``: the module as it is (the default; every committed record was made with it);
* ``fold_bn``: a copy with each batch norm folded into the convolution before it (``torch.fx`` graph rewrite;
  fewer passes over the activations);
* ``freeze``: a TorchScript trace of that folded copy, frozen (weights become constants, so the JIT can pre-pack
  them), traced under the run's precision;
* ``compile``: ``torch.compile`` of the module (Inductor; on a GPU with ``mode="reduce-overhead"``, i.e. CUDA
  graphs); compilation runs at the first batch and is part of the first image's time.

Each is wrapped in :class:`~benchmark.certificates.device.SmoothingClassifier` (eval, channels_last, autocast),
so they differ only in how the arithmetic is scheduled: their logits agree up to rounding, which can move a vote
near a tie, so the engine is part of a run's record key (a late key: ``eager`` keeps every older hash). The model
given is never changed; every engine but ``eager`` works on a copy.
"""

from __future__ import annotations

import copy
import warnings

import torch

from benchmark.certificates.device import Precision, SmoothingClassifier, resolve_precision
from benchmark.errors import BenchmarkError

ENGINES = ("eager", "fold_bn", "freeze", "compile")  # config.run_config.ENGINES names the same (a test checks)


def build_engine(model, device, precision: str | Precision | None, engine: str = "eager"):
    """``model`` ready for Monte-Carlo voting at ``precision`` through ``engine`` (module docstring); a classifier
    that is not a module (or already wrapped) is returned as it is."""
    if engine not in ENGINES:
        raise BenchmarkError(f"no engine is called {engine!r}: known are {', '.join(ENGINES)}")
    if precision is None or isinstance(model, SmoothingClassifier) or not isinstance(model, torch.nn.Module):
        return model
    device = torch.device(device)
    resolved = resolve_precision(str(precision), device)
    if engine == "eager":
        return SmoothingClassifier(model, device, resolved)
    module = _folded(model)
    if engine == "freeze":
        module = _Frozen(module)
    elif engine == "compile":
        module = torch.compile(module, mode="reduce-overhead" if device.type == "cuda" else None, dynamic=False)
    return SmoothingClassifier(module, device, resolved)


def _folded(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with each eval-mode batch norm folded into the convolution that alone feeds it (an
    error naming the engine if the model cannot be traced)."""
    import inspect

    import torch.fx as fx
    from torch.fx.experimental.optimization import matches_module_pattern, replace_node_module
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    # optional forward arguments are traced at their defaults (e.g. a classifier's ``net=None`` override)
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    try:
        graph_module = fx.symbolic_trace(model, concrete_args=concrete or None)
    except Exception as err:  # fx tracing fails on data-dependent control flow
        raise BenchmarkError(
            f"engine fold_bn cannot trace {type(model).__name__} ({type(err).__name__}): use --engine eager"
        ) from None
    modules = dict(graph_module.named_modules())
    for pattern in ((torch.nn.Conv1d, torch.nn.BatchNorm1d), (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
        for node in list(graph_module.graph.nodes):
            if not matches_module_pattern(pattern, node, modules) or len(node.args[0].users) > 1:
                continue
            conv, bn = modules[node.args[0].target], modules[node.target]
            if not bn.track_running_stats:
                continue
            replace_node_module(node.args[0], modules, fuse_conv_bn_eval(conv, bn))
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module


class _Frozen(torch.nn.Module):
    """``module`` traced at its first batch (under the autocast the wrapper runs it in) and frozen: the first batch
    fixes the input shape the trace specialises to, so nothing guesses it."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module, self.frozen = module.eval(), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is None:
            with warnings.catch_warnings():  # TorchScript's deprecation notices: the engine is measured, not advised
                warnings.simplefilter("ignore", FutureWarning)
                self.frozen = torch.jit.freeze(torch.jit.trace(self.module, x, check_trace=False))
        return self.frozen(x)


__all__ = ["ENGINES", "build_engine"]
