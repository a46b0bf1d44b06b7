"""Stacked states of many α and the vmapped forward pass that evaluates them together.

The torch.func "model ensembling" recipe: tensors that move with α are stacked along a new leading dimension
and `vmap(functional_call(model, ...))` runs every α of the stack in one call; tensors that do not move
(held at an endpoint, integer buffers) are passed once, unstacked; so is the data — only states are stacked.
A model vmap cannot run (data-dependent control flow, `.item()`, an op without a batching rule that raises) is
evaluated one α at a time instead, with a warning: `check_vmap` tries two α on the probe batch before the first
batch of data, and a failure later in the line falls back too (the loop then either runs or raises the model's
own error). Tied parameters (one tensor under two names, e.g. a language model's embedding and output layer)
are passed under their first name only.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..errors import LosspathError
from ..keys import State, module_of
from .batchnorm import CumulativeAverage, batch_statistics, tracked_batchnorms
from .data_source import Inputs
from .first_layer import FirstLayerShortcut
from .relu_pair import ALPHAS_KEY, BIAS_KEY, ReluPair
from .schemes import Rule
from .states import blend


class StackedLine:
    """A private copy of the model with endpoint states and rules; builds per-chunk stacks and runs them.

    `first`: the first layer's name (first-layer shortcut); `second`: with it, the second layer of a ReLU pair
    (relu_pair.py), which then replaces the first-layer shortcut; `out_relu`: the ReLU module after the pair
    that the pair's kernel applies.
    """

    def __init__(self, net: nn.Module, start: State, end: State, rules: dict[str, Rule], first: str | None,
                 second: str | None = None, out_relu: str | None = None, extract=lambda out: out):
        self.net, self.start, self.end, self.first, self.second = net, start, end, first, second
        self.aliases = tied_aliases(net)
        self.rules = {k: r for k, r in rules.items() if k not in self.aliases}
        self.extract = extract  # picks the prediction tensor from the model's output (inside vmap)
        self.device = next(iter(end.values())).device if end else torch.device("cpu")
        self.vectorize, self.fallback = True, None
        self.bn_names = sorted({module_of(k) for k, r in rules.items() if r.recompute})
        stray = [name for name in self.bn_names if name not in tracked_batchnorms(net)]
        if stray:
            raise LosspathError(f"batchnorm='recompute' needs BatchNorm modules; {', '.join(stray)} are not.")
        self.shortcut = self.pair = None
        if second is not None:
            self.pair = ReluPair(second, relu=out_relu is not None)
            for name, module in zip((first, second, out_relu), self.pair.stand_ins):
                self._replace(name, module)
        elif first is not None:
            self.shortcut = FirstLayerShortcut(net.get_submodule(first))
            self._replace(first, self.shortcut)

    def _replace(self, name: str, module: nn.Module) -> None:
        parent, _, child = name.rpartition(".")
        if name == "":  # the whole model is one layer (softmax regression)
            self.net = module
        else:
            setattr(self.net.get_submodule(parent) if parent else self.net, child, module)

    def _key(self, name: str) -> str:
        return f"{self.first}.{name}" if self.first else name

    def _first_keys(self) -> set[str]:
        """Keys the shortcuts handle themselves (never stacked by `states`)."""
        modules = [m for m in (self.first, self.second) if m is not None]
        return {f"{m}.{p}" if m else p for m in modules for p in ("weight", "bias")}

    def bytes_per_alpha(self) -> int:
        """Bytes of the stacked tensors per α (the shortcut layers' weights are never stacked)."""
        skip = self._first_keys()
        return sum(self.end[k].numel() * self.end[k].element_size()
                   for k, r in self.rules.items() if r.constant is None and k not in skip)

    def new_batch(self) -> None:
        for shortcut in (self.shortcut, self.pair):
            if shortcut is not None:
                shortcut.new_batch()

    def _value(self, key: str, a: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """The tensor of `key` for alphas `a`, and whether it is stacked over α."""
        rule = self.rules[key]
        if rule.constant is not None:
            return (self.start if rule.constant == 0 else self.end)[key], False
        return blend(self.start[key], self.end[key], rule.coefficients(a)), True

    def states(self, a: torch.Tensor) -> tuple[State, State]:
        """(stacked, fixed): the tensors that move, stacked over the alphas `a`, and those that do not."""
        stacked, fixed = {}, {}
        skip = self._first_keys()
        for k, rule in self.rules.items():
            if rule.recompute or k in skip:
                continue
            value, is_stacked = self._value(k, a)
            (stacked if is_stacked else fixed)[k] = value
        if self.pair is not None:
            self._configure_pair(a, stacked)
        elif self.first is not None:
            self._configure_first(a, stacked, fixed)
        return stacked, fixed

    def _configure_pair(self, a, stacked) -> None:
        """Endpoint values of the pair's weights for the kernel; the α and second-layer biases go in the stack."""
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64, device=a.device)

        def at_ends(key):
            if key not in self.rules:
                return None, None
            value, is_stacked = self._value(key, ends)
            return (value[0], value[1]) if is_stacked else (value, value)

        weight = at_ends(f"{self.second}.weight")
        self.pair.configure(at_ends(self._key("weight")), at_ends(self._key("bias")), weight)
        stacked[ALPHAS_KEY] = a
        if f"{self.second}.bias" in self.rules:
            bias, is_stacked = self._value(f"{self.second}.bias", a)
            stacked[BIAS_KEY] = bias if is_stacked else bias.expand(len(a), -1)
        else:
            stacked[BIAS_KEY] = weight[0].new_zeros(len(a), weight[0].shape[0])

    def _configure_first(self, a, stacked, fixed) -> None:
        w, b = self._key("weight"), self._key("bias")
        wrule, brule = self.rules[w], self.rules.get(b)
        if wrule.constant is not None:
            self.shortcut.configure("held", self._value(w, a)[0], None)
        else:
            stacked[self._key("weight_coef")] = wrule.coefficients(a).to(self.end[w].dtype)
            if brule is None:
                return self.shortcut.configure("lerp", self.start[w], self.end[w])
            if brule.constant is not None:
                held = self._value(b, a)[0]
                return self.shortcut.configure("lerp", self.start[w], self.end[w], held, held)
            if brule.power == wrule.power:
                return self.shortcut.configure("lerp", self.start[w], self.end[w], self.start[b], self.end[b])
            self.shortcut.configure("lerp_plus_bias", self.start[w], self.end[w])
        if brule is not None:
            value, is_stacked = self._value(b, a)
            (stacked if is_stacked else fixed)[b] = value

    def forward(self, stacked: State, fixed: State, inputs: Inputs, n: int) -> torch.Tensor:
        """Predictions (n, batch, ...) for the n alphas of `stacked` (logits for a classifier)."""

        def single(state, inputs):
            return self.extract(functional_call(self.net, (state, fixed), inputs.args, inputs.kwargs))

        if self.pair is not None:
            stacked = self.pair.fill(stacked, inputs.args[0])

        if not stacked or n == 1:  # one forward: nothing moves, or a single α (vmap would only add overhead)
            out = single({k: v[0] for k, v in stacked.items()}, inputs)
            return out.expand(n, *out.shape)
        if self.vectorize:
            try:
                return vmap(single, in_dims=(0, None))(stacked, inputs)
            except Exception as e:
                self.fall_back(e)
        return torch.stack([single({k: v[i] for k, v in stacked.items()}, inputs) for i in range(n)])

    def fall_back(self, error: Exception) -> None:
        """Evaluate one α at a time from now on (warned once, the reason kept in `fallback`)."""
        self.fallback = f"{type(error).__name__}: {error}"
        warnings.warn(f"torch.func.vmap cannot run this model ({self.fallback}); evaluating one alpha at a time.",
                      stacklevel=5)
        self.vectorize = False
        self.new_batch()

    def check_vmap(self, inputs: Inputs) -> None:
        """Run the two endpoints on the probe inputs, so a model vmap cannot run falls back before any data."""
        stacked, fixed = self.states(torch.tensor([0.0, 1.0], dtype=torch.float64, device=self.device))
        try:
            with torch.inference_mode():
                self.forward(stacked, fixed, inputs, 2)
        finally:
            self.new_batch()

    def state_at(self, stacked: State, i: int, alpha: float) -> State:
        """The full state dict of the model at the i-th α of `stacked` (recomputed BN statistics included),
        tied aliases left out, for a plain forward of the original model."""
        a = torch.tensor([alpha], dtype=torch.float64, device=self.device)
        out = {}
        for k, rule in self.rules.items():
            if rule.recompute:
                out[k] = stacked[k][i]
            else:
                value, is_stacked = self._value(k, a)
                out[k] = value[0] if is_stacked else value
        return out

    def recompute(self, stacked: State, fixed: State, train_batches, n: int, per_call: int) -> State:
        """Running statistics at every α of the stack: the exact cumulative average over `train_batches`."""
        keys = [k for k, r in self.rules.items() if r.recompute]
        if not keys:  # a network without BatchNorm: nothing to recompute
            return {}
        average = CumulativeAverage(self.net, self.bn_names, n, self.end[keys[0]].dtype, self.device)
        stats = {k: v for k, v in average.buffers().items() if v.dim() > 0}
        fixed = {**fixed, **{k: v for k, v in average.buffers().items() if v.dim() == 0}}
        with batch_statistics(self.net, self.bn_names):
            try:
                for batch in train_batches:
                    self.new_batch()
                    for lo in range(0, n, per_call):
                        hi = min(lo + per_call, n)
                        part = {k: v[lo:hi] for k, v in {**stacked, **stats}.items()}
                        self.forward(part, fixed, batch.inputs, hi - lo)  # writes this batch's statistics
                    average.add()
            finally:
                self.new_batch()
        if average.batches == 0:
            raise LosspathError("The training data for batchnorm='recompute' is empty.")
        return {k: v for k, v in average.result(self.end[keys[0]].dtype).items() if k in self.rules}


def tied_aliases(model: nn.Module) -> set[str]:
    """State keys that name a tensor already registered under an earlier name (tied weights)."""
    seen, aliases = set(), set()
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        if id(t) in seen:
            aliases.add(name)
        seen.add(id(t))
    return aliases


def check_tied(model: nn.Module, state: State, which: str) -> None:
    """Raise a LosspathError if `state` gives different values to names of one tied tensor."""
    first: dict[int, str] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        if id(t) not in first:
            first[id(t)] = name
        elif name in state and first[id(t)] in state and not torch.equal(state[name], state[first[id(t)]]):
            raise LosspathError(f"The {which} state gives different values to {first[id(t)]} and {name}, which are "
                                "one tied tensor in the model.")


def fill_tied(model: nn.Module, state: State) -> State:
    """`state` with every missing name of a tied tensor filled from another name of it (safetensors files and
    HuggingFace checkpoints store a tied tensor once)."""
    groups: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        groups.setdefault(id(t), []).append(name)
    out = dict(state)
    for names in groups.values():
        present = [n for n in names if n in out]
        for name in names:
            if present and name not in out:
                out[name] = out[present[0]]
    return out
