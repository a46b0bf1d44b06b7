"""Layer-wise Gaussian perturbations of a network state (Liao & Poggio, Theory II, Figs. 3–5).

"The perturbation is performed by adding a gaussian noise to the weights of each layer with the standard
deviation being c times layer's standard deviation": every parameter tensor θ_k gets noise drawn from
N(0, (c · std(θ_k))²), std over that tensor's entries. Buffers (BatchNorm running statistics, counters)
are left alone; a tensor with zero spread (biases at their zero init) stays unchanged.
"""
from __future__ import annotations

import torch

from .keys import is_buffer


def perturb_state(state: dict[str, torch.Tensor], scale: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A copy of `state` with θ_k + N(0, (scale·std(θ_k))²) for every floating parameter tensor θ_k.

    Noise is drawn on the CPU from `generator`, tensor by tensor in sorted key order, so a seed fixes it
    exactly whatever order the dict has.
    """
    out = {}
    for key in sorted(state):
        v = state[key]
        if v.is_floating_point() and not is_buffer(key) and v.numel() > 1:
            std = v.detach().double().std().item()
            noise = torch.randn(v.shape, generator=generator, dtype=torch.float64) * (scale * std)
            out[key] = (v.detach().cpu().double() + noise).to(v.dtype).to(v.device)
        else:
            out[key] = v.clone()
    return {key: out[key] for key in state}
