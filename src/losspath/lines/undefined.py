"""Points of a line where θ(α) is not a valid network, or its output is NaN: reported as undefined, not scored.

Two causes, found per α:
  - a BatchNorm running variance below 0 in the state. With batchnorm="interpolate" and α outside [0, 1] the
    interpolated variance (1 − α)·v_start + α·v_end can go negative; a variance cannot, and PyTorch's forward
    then takes the square root of a negative number (NaN). Found from the state, before any data runs.
  - NaN in the model's output at a valid state that is NaN in float64 too (recomputed for that α and batch
    only: 0/0, log or sqrt of a negative number inside the model). Output that is NaN in float32 but not in
    float64 comes from float32 overflow (inf − inf in a layer): such a point keeps a loss of inf, as logits
    that overflow to ±inf do.
An undefined point gets NaN loss, NaN metrics, zero class counts and a reason (LineResult.undefined_reason).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..keys import tensor_name

NEGATIVE_VARIANCE = "negative BatchNorm running variance"
NAN_OUTPUT = "NaN in the model's output (in float64 too)"


def negative_variances(stacked: dict[str, torch.Tensor], n: int) -> list[str]:
    """Per α of the stack: "" or the reason naming the BatchNorm modules whose running variance is below 0."""
    reasons = [[] for _ in range(n)]
    for key, value in stacked.items():
        if tensor_name(key) == "running_var" and value.dim() >= 1 and value.shape[0] == n:
            for i in torch.nonzero((value < 0).reshape(n, -1).any(1)).flatten().tolist():
                reasons[i].append(key.rsplit(".", 1)[0])
    return [f"{NEGATIVE_VARIANCE} ({', '.join(r)})" if r else "" for r in reasons]


class Float64Check:
    """Re-runs one α on one batch in float64 to tell a NaN of the function from a float32 overflow."""

    def __init__(self, model: nn.Module, extract):
        self.model, self.extract, self.model64 = model, extract, None

    def nan(self, state: dict[str, torch.Tensor], inputs) -> bool:
        """Whether the model's output at `state` (a full state dict) on `inputs` holds NaN in float64."""
        import copy

        if self.model64 is None:
            self.model64 = copy.deepcopy(self.model).to(next(iter(state.values())).device).double().eval()

        def wide(t):
            return t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t

        args = tuple(wide(t) for t in inputs.args)
        kwargs = {k: wide(v) for k, v in inputs.kwargs.items()}
        with torch.inference_mode():
            out = functional_call(self.model64, {k: wide(v) for k, v in state.items()}, args, kwargs)
        return bool(self.extract(out).isnan().any())
