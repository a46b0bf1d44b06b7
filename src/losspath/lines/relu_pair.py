"""Exact ReLU-pair shortcut: Linear → ReLU → Linear at the input costs per unit switch, not per α.

With the first-layer shortcut (`first_layer.py`) a LeNet's first layer runs twice per batch, but every α still
pays for the second layer. When the first layer's weight and bias move affinely with α (coefficient α or held:
every scheme of `schemes.py` for a first layer), each example's pre-activation is z(α) = p + α·q with
p = z(0), q = z(1) − z(0), so every hidden unit's ReLU switches at most once along the whole line. If the second
layer's weight is affine too, W(α) = M + α·D, its output is a quadratic in α between switches:

    y(α) = Σ_{j on at α} (M_j + α·D_j)(p_j + α·q_j) + b(α) = P0 + α·P1 + α²·P2 + b(α),
    P0 = Σ_on p_j·M_j,   P1 = Σ_on (q_j·M_j + p_j·D_j),   P2 = Σ_on q_j·D_j        (M_j: column j of M).

We get (P0, P1, P2) at the smallest α from one matrix product ([p; q] over the units on, times [Mᵀ Dᵀ]), then
sweep the α in increasing order and add or remove a unit's terms where it switches (`kernels.py`). The cost per
example is four α's worth of matrix products plus O(switches × outputs), instead of O(α × hidden × outputs); the
rest of the network runs under vmap from the second layer's output on. It is the same function, summed in
another order (in float64).

We apply it only where a probe proves the structure (`find_relu_pair`; `find_output_relu` for an nn.ReLU right
after, which the kernel then applies) and only on the CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .kernels import relu_pair_sweep, switch_points
from .probe import probe_calls
from .schemes import Rule

ALPHAS_KEY, BIAS_KEY = "\0relu_pair.alphas", "\0relu_pair.bias"  # per-α entries of the stack, not model keys


def find_relu_pair(model: nn.Module, inputs: torch.Tensor, state: dict, first: str | None,
                   rules: dict[str, Rule]) -> str | None:
    """Name of the nn.Linear whose input is exactly relu(first layer's output) and through which alone the first
    layer reaches the logits, if `first` is an nn.Linear and both layers' weights move affinely; else None."""
    if first is None or type(model.get_submodule(first)) is not nn.Linear:
        return None
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    second = _called_next(model, inputs, state, first, names)
    if second is None or type(model.get_submodule(second)) is not nn.Linear or _shared(model, second):
        return None
    keys = [f"{first}.weight", f"{first}.bias", f"{second}.weight"]
    if not all(_affine(rules.get(k)) for k in keys):
        return None
    return second if _feeds_only(model, inputs, state, first, second, F.relu) else None


def find_output_relu(model: nn.Module, inputs: torch.Tensor, state: dict, second: str) -> str | None:
    """Name of the nn.ReLU module that takes the second layer's output as it is and through which alone that
    output reaches the logits; the kernel then applies it, and the module is skipped. None if there is none."""
    names = [n for n, m in model.named_modules() if type(m) is nn.ReLU]
    relu = _called_next(model, inputs, state, second, names + [second])
    if relu is None or relu == second:
        return None
    return relu if _feeds_only(model, inputs, state, second, relu, lambda z: z) else None


def _affine(rule: Rule | None) -> bool:
    return rule is None or (not rule.recompute and (rule.constant is not None or rule.power == 1))


def _called_next(model: nn.Module, inputs, state, name: str, names: list[str]) -> str | None:
    """Among the modules `names` (and `name`), the one called right after `name`, if both are called once."""
    order = [n for n, _ in probe_calls(model, inputs, list(dict.fromkeys([*names, name])), state)]
    if order.count(name) != 1:
        return None
    at = order.index(name)
    return order[at + 1] if at + 1 < len(order) and order.count(order[at + 1]) == 1 else None


def _shared(model: nn.Module, name: str) -> bool:
    """Whether a parameter of module `name` is also registered elsewhere in the model (tied weights)."""
    own = list(model.get_submodule(name).parameters())
    return sum(1 for _, p in model.named_parameters(remove_duplicate=False) if any(p is t for t in own)) != len(own)


def _feeds_only(model, inputs, state, a: str, b: str, transform) -> bool:
    """Whether module b's input is exactly transform(a's output), and a's output reaches the logits only through b.

    The probe runs twice: as is, then with a's output replaced by large random values and b's output pinned to
    its first-run value. b must see transform of the replacement (for ReLU: not a clamp that agrees on small
    values), and the logits must not change (nothing else reads a's output or b's input).
    """
    logits, seen = _probe(model, inputs, state, a, b)
    z, h = seen.get("a"), seen.get("input")
    if z is None or z.dim() != 2 or z.dtype not in (torch.float32, torch.float64) or h is None \
            or h.shape != z.shape or not torch.equal(h, transform(z)):
        return False
    g = torch.Generator().manual_seed(0)
    noise = (torch.randn(z.shape, generator=g, dtype=z.dtype) * (10 * z.abs().max().item() + 10)).to(z.device)
    logits2, seen2 = _probe(model, inputs, state, a, b, noise, seen["output"])
    return torch.equal(seen2["input"], transform(noise)) and torch.equal(logits2, logits)


def _probe(model, inputs, state, a, b, replace_a=None, pin_b=None):
    """Logits and {a: module a's output, input/output: module b's} of one forward, optionally with a's output
    replaced and b's pinned. Copies are recorded and passed on, so in-place ops downstream change neither."""
    seen = {}

    def on_a(module, args, out):
        seen["a"] = (out if replace_a is None else replace_a).clone()
        return seen["a"].clone()

    def before_b(module, args):
        seen["input"] = args[0].clone() if isinstance(args[0], torch.Tensor) else None

    def on_b(module, args, out):
        seen["output"] = (out if pin_b is None else pin_b).clone()
        return seen["output"].clone()

    handles = [model.get_submodule(a).register_forward_hook(on_a),
               model.get_submodule(b).register_forward_pre_hook(before_b),
               model.get_submodule(b).register_forward_hook(on_b)]
    try:
        with torch.inference_mode():
            logits = functional_call(model, state, (inputs,))
    finally:
        for h in handles:
            h.remove()
    return logits, seen


class _Given(nn.Module):
    """Stands in for the first layer: returns a copy of the unbatched p (vmap then runs the ReLU on it once; an
    in-place ReLU changes the copy, not the p that later calls of the batch reuse)."""

    def __init__(self):
        super().__init__()
        self.value = None

    def forward(self, x):
        return self.value.clone()


class _Table(nn.Module):
    """Stands in for the second layer: returns its buffer `out`, filled per α through functional_call."""

    def __init__(self):
        super().__init__()
        self.register_buffer("out", torch.zeros(()))

    def forward(self, x):
        return self.out


class ReluPair:
    """The stand-in modules and the computation of the second layer's outputs for a batch and some α. With
    `relu` the outputs leave through the ReLU of `find_output_relu`, whose stand-in is then an nn.Identity."""

    def __init__(self, second: str, relu: bool = False):
        self.out_key, self.relu = f"{second}.out", relu
        self.stand_ins = (_Given(), _Table()) + ((nn.Identity(),) if relu else ())
        self.cache = None

    def configure(self, w1, b1, w2) -> None:
        """(value at α = 0, value at α = 1) of the first layer's weight and bias (None: no bias) and the second
        layer's weight."""
        self.w1 = torch.cat(w1)  # both endpoints' first layers as one matrix product
        self.b1 = None if b1[0] is None else torch.cat(b1)
        self.m_t, self.d_t = w2[0].t().contiguous(), (w2[1] - w2[0]).t().contiguous()
        self.md_t = torch.cat([self.m_t, self.d_t], 1)
        self.new_batch()

    def new_batch(self) -> None:
        self.cache = None

    def _pq(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is None or self.cache[0].shape[0] * self.w1.shape[1] != x.numel():
            flat = x.reshape(-1, self.w1.shape[1])  # the first layer's input: x reshaped (find_first_layer)
            z0, z1 = F.linear(flat, self.w1, self.b1).chunk(2, dim=1)
            self.cache = (z0, z1 - z0)
        return self.cache

    def fill(self, stacked: dict, x: torch.Tensor) -> dict:
        """`stacked` with the α and second-layer bias entries replaced by the second layer's outputs."""
        stacked = dict(stacked)
        alphas, bias = stacked.pop(ALPHAS_KEY), stacked.pop(BIAS_KEY)
        p, q = self._pq(x)
        self.stand_ins[0].value = p
        on_first, switch, order = switch_points(p, q, alphas)
        on = on_first.to(p.dtype)
        products = torch.cat([on * p, on * q]) @ self.md_t  # [p·M, p·D; q·M, q·D] over the units on
        (pm, pd), (qm, qd) = (half.chunk(2, dim=1) for half in products.chunk(2))
        coefficients = (pm, qm + pd, qd)
        stacked[self.out_key] = relu_pair_sweep(p, q, on_first, switch, alphas, order, coefficients, self.m_t,
                                                self.d_t, bias, self.relu)
        return stacked
